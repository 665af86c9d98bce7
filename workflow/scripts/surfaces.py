"""The surfaces of one solution, in one job: its 2D loss surface along both direction kinds (Li et
al. 2018), ``random`` (the shared Gaussian directions, filter-normalized to the solution) and
``hessian`` (its top-2 Hessian eigenvectors, scaled to the length of the normalized random
direction), and its roughness profiles (Wu, Du, Chen 2021: normalized total variation of
filter-normalized random 1D training-loss profiles). Part ``part`` of ``parts`` measures its share
of both grids and of the roughness directions; a run in one part is written whole, as the merge of
its parts would be (no merge job)."""

import logging

import numpy as np
import pandas as pd
import torch

from lossatlas import io
from lossatlas.evaluate import evaluate_points
from lossatlas.landscape import (
    SurfacePart,
    eigenvector_plane,
    line_points,
    roughness_index,
    save_merged_surface,
    save_surface_part,
    shared_directions,
    surface_2d_part,
)
from lossatlas.params import normalize_direction
from lossatlas.runs import load_solution, skip_reason

smk = snakemake  # noqa: F821
torch.set_num_threads(smk.threads)
settings, name = smk.params.settings, smk.wildcards.run
part, parts = int(smk.wildcards.get("part", 0)), settings["parts"]
xs = np.linspace(settings["xmin"], settings["xmax"], settings["xnum"])
ys = np.linspace(settings["ymin"], settings["ymax"], settings["ynum"])
radius = max(abs(settings["xmin"]), abs(settings["xmax"]))
alphas = np.linspace(-radius, radius, settings["roughness_points"])
# this part's roughness directions: contiguous shares, so that the merge keeps their order
roughness_rows = np.array_split(np.arange(settings["roughness_directions"]), parts)[part]


def normalized(direction: torch.Tensor, run) -> torch.Tensor:
    return normalize_direction(direction.to(run.device), run.theta, run.layout,
                               settings["normalization"], settings["ignore_biasbn"])


def measure_plane(run, kind: str, d1: torch.Tensor, d2: torch.Tensor, log) -> SurfacePart:
    grid_x, grid_y, attrs = xs, ys, {"direction_kind": kind}
    if kind == "hessian":
        arrays, curvature = io.read_h5(smk.input.curvature)
        unit = float(d1.norm())
        plane = eigenvector_plane(arrays["hessian_top"],
                                  torch.from_numpy(arrays["hessian_eigenvectors"]).to(run.theta),
                                  unit, settings["width_delta"], settings["hessian_extent"],
                                  settings["xnum"], settings["ynum"])
        (d1, d2), grid_x, grid_y = plane.directions, plane.xs, plane.ys
        attrs.update({"eigenvalues": arrays["hessian_top"][:2].tolist(), "unit": unit,
                      "hessian_samples": curvature["n_samples"],
                      "hessian_bn_mode": curvature["bn_mode"]})
    logging.info("%s directions: part %d of %d of a %d x %d grid", kind, part, parts, len(grid_x),
                 len(grid_y))
    result = surface_2d_part(run.model, run.theta, d1, d2, grid_x, grid_y, run.train_test,
                             part=part, n_parts=parts, bn_policy=settings["bn_policy"],
                             precision=run.precision, progress_file=log)
    result.attrs.update({**attrs, "status": "ok"})
    return result


def measure_roughness(run, raw: torch.Tensor, log) -> pd.DataFrame:
    directions = [normalized(raw[2 + row], run) for row in roughness_rows]
    logging.info("roughness: directions %s of %d x %d points", roughness_rows.tolist(),
                 settings["roughness_directions"], len(alphas))
    if not directions:
        return pd.DataFrame(columns=["run", "status", "direction"])
    points = torch.cat([line_points(run.theta, d, alphas) for d in directions])
    metrics = evaluate_points(run.model, points, run.data.x_train, run.data.y_train,
                              bn_policy=settings["bn_policy"], bn_data=run.data.x_train,
                              precision=run.precision, progress_file=log)
    result = roughness_index(alphas, metrics.loss.reshape(len(directions), len(alphas)))
    return pd.DataFrame({
        "run": name, "status": "ok", "direction": roughness_rows,
        "normalized_tv": result.normalized_tv, "mean": result.mean, "std": result.std,
        "roughness_index": result.roughness_index, "radius": radius,
        "bn_policy": metrics.bn_policy})


with io.job_log(smk.log[0], exit_when_done=True) as log:
    skipped = skip_reason(smk.input.status, name)
    if skipped:
        logging.warning("%s", skipped)
        planes = {kind: SurfacePart(0, 0, xs, ys, {}, {"status": skipped})
                  for kind in ("random", "hessian")}
        roughness = pd.DataFrame([{"run": name, "status": skipped}])
    else:
        run = load_solution(smk.input.data, smk.params.model, smk.params.run_settings,
                            smk.input.final, device=smk.params.device,
                            precision=smk.params.precision)
        raw = shared_directions(run.layout, settings["direction_seed"],
                                settings["roughness_directions"])
        d1, d2 = normalized(raw[0], run), normalized(raw[1], run)
        planes = {kind: measure_plane(run, kind, d1, d2, log) for kind in ("random", "hessian")}
        roughness = measure_roughness(run, raw, log)
    for kind, plane in planes.items():
        if parts == 1:
            save_merged_surface(smk.output[kind], [plane],
                                {**smk.params.surface_attrs, "run": name, "direction_kind": kind})
        else:
            save_surface_part(smk.output[kind], plane)
    io.write_csv(roughness, smk.output.roughness)
