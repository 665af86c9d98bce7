"""One part of a 2D loss surface around a solution (Li et al. 2018), along one direction kind:
``random`` (the shared Gaussian directions, filter-normalized to the solution) or ``hessian`` (its
top-2 Hessian eigenvectors, scaled to the length of the normalized random direction). A surface in
one part is written whole, as the merge of its parts would be (no merge job)."""

import logging

import numpy as np
import torch

from lossatlas import io
from lossatlas.landscape import (
    SurfacePart,
    eigenvector_plane,
    load_directions,
    save_merged_surface,
    save_surface_part,
    surface_2d_part,
)
from lossatlas.params import normalize_direction
from lossatlas.runs import load_solution, skip_reason

smk = snakemake  # noqa: F821
torch.set_num_threads(smk.threads)
settings, kind = smk.params.settings, smk.wildcards.kind
part, parts = int(smk.wildcards.get("part", 0)), settings["parts"]
xs = np.linspace(settings["xmin"], settings["xmax"], settings["xnum"])
ys = np.linspace(settings["ymin"], settings["ymax"], settings["ynum"])
with io.job_log(smk.log[0], exit_when_done=True) as log:
    skipped = skip_reason(smk.input.status, smk.wildcards.run)
    if skipped:
        logging.warning("%s", skipped)
        result = SurfacePart(0, 0, xs, ys, {}, {"status": skipped})
    else:
        run = load_solution(smk.input.data, smk.params.model, smk.params.run_settings,
                            smk.input.final, device=smk.params.device,
                            precision=smk.params.precision)
        raw, _ = load_directions(smk.input.directions, run.layout)
        d1, d2 = (normalize_direction(raw[i].to(run.device), run.theta, run.layout,
                                      settings["normalization"], settings["ignore_biasbn"])
                  for i in (0, 1))
        attrs = {"direction_kind": kind}
        if kind == "hessian":
            arrays, curvature = io.read_h5(smk.input.curvature[0])
            unit = float(d1.norm())
            plane = eigenvector_plane(arrays["hessian_top"],
                                      torch.from_numpy(arrays["hessian_eigenvectors"]).to(run.theta),
                                      unit, settings["width_delta"], settings["hessian_extent"],
                                      settings["xnum"], settings["ynum"])
            d1, d2 = plane.directions
            xs, ys = plane.xs, plane.ys
            attrs.update({"eigenvalues": arrays["hessian_top"][:2].tolist(), "unit": unit,
                          "hessian_samples": curvature["n_samples"],
                          "hessian_bn_mode": curvature["bn_mode"]})
        logging.info("%s directions: part %d of %d of a %d x %d grid", kind, part, parts, len(xs),
                     len(ys))
        result = surface_2d_part(run.model, run.theta, d1, d2, xs, ys, run.train_test, part=part,
                                 n_parts=parts, bn_policy=settings["bn_policy"],
                                 precision=run.precision, progress_file=log)
        result.attrs.update({**attrs, "status": "ok"})
    if parts == 1:
        save_merged_surface(smk.output[0], [result], {**settings, "run": smk.wildcards.run,
                                                      "direction_kind": kind})
    else:
        save_surface_part(smk.output[0], result)
