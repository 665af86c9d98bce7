"""One part of a filter-normalized 2D loss surface around a solution (Li et al. 2018)."""

import logging

import numpy as np
import torch

from lossatlas import io
from lossatlas.landscape import (
    SurfacePart,
    load_directions,
    save_surface_part,
    surface_2d_part,
)
from lossatlas.params import normalize_direction
from lossatlas.runs import load_solution, skip_reason

smk = snakemake  # noqa: F821
torch.set_num_threads(smk.threads)
settings = smk.params.settings
part, parts = int(smk.wildcards.part), settings["parts"]
xs = np.linspace(settings["xmin"], settings["xmax"], settings["xnum"])
ys = np.linspace(settings["ymin"], settings["ymax"], settings["ynum"])
with io.job_log(smk.log[0]) as log:
    skipped = skip_reason(smk.input.status, smk.wildcards.run)
    if skipped:
        logging.warning("%s", skipped)
        save_surface_part(smk.output[0], SurfacePart(0, 0, xs, ys, {}, {"status": skipped}))
    else:
        run = load_solution(smk.input.data, smk.params.model, smk.params.run_settings,
                            smk.input.final, device=smk.params.device,
                            precision=smk.params.precision)
        raw, _ = load_directions(smk.input.directions, run.layout)
        d1, d2 = (normalize_direction(raw[i].to(run.device), run.theta, run.layout,
                                      settings["normalization"], settings["ignore_biasbn"])
                  for i in (0, 1))
        logging.info("part %d of %d of a %d x %d grid", part, parts, len(xs), len(ys))
        result = surface_2d_part(run.model, run.theta, d1, d2, xs, ys, run.train_test, part=part,
                                 n_parts=parts, bn_policy=settings["bn_policy"],
                                 precision=run.precision, progress_file=log)
        result.attrs["status"] = "ok"
        save_surface_part(smk.output[0], result)
