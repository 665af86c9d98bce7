"""Mode connectivity (Garipov et al. 2018; Yang et al. 2021): for each pair of independent
solutions, train/test loss and error along the straight line and every trained curve at evenly
spaced t, and the train loss on the plane through (θ_a, Bézier bend, θ_b) with the curves drawn on
it; one batched evaluation per pair, BN statistics recomputed at every point by default."""

import logging
import time

import numpy as np
import torch

from lossatlas import io
from lossatlas.evaluate import evaluate_points, evaluate_train_test
from lossatlas.landscape import line_points
from lossatlas.parameterizations import build_structure
from lossatlas.params import get_flat_params
from lossatlas.runs import load_run_model, load_solution, skip_reason
from lossatlas.structures import plane_grid_through

smk = snakemake  # noqa: F821
torch.set_num_threads(smk.threads)
figure, pairs = smk.params.figure, smk.params.pairs
curves = figure["curves"]
ts = np.linspace(0.0, 1.0, figure["points"])
finals = dict(zip([run for pair in pairs for run in pair], smk.input.final))
run_status = dict(zip([run for pair in pairs for run in pair], smk.input.status))
curve_files = iter(zip(smk.input.curves, smk.input.curve_status))
arrays, statuses = {}, []
with io.job_log(smk.log[0], exit_when_done=True) as log:
    solution = None
    for p, (a, b) in enumerate(pairs):
        files = {kind: next(curve_files) for kind in curves}
        reasons = [r for run in (a, b) if (r := skip_reason(run_status[run], run))]
        reasons += [r for kind, (_, status) in files.items()
                    if (r := skip_reason(status, f"{kind}_{a}_{b}"))]
        if reasons:
            logging.warning("pair %d: %s", p, reasons[0])
            statuses.append(reasons[0])
            continue
        start = time.perf_counter()
        solution = load_solution(smk.input.data, smk.params.model, smk.params.settings[a],
                                 finals[a], device=smk.params.device,
                                 precision=smk.params.precision)
        data = solution.data
        theta_a = solution.theta
        theta_b = get_flat_params(load_run_model(smk.params.model, smk.params.settings[b]["model"],
                                                 data, finals[b])).to(solution.device)
        paths = {"line": line_points(theta_a, theta_b - theta_a, ts)}
        bends = {}
        for kind, (trainable, _) in files.items():
            saved = io.load_torch(trainable)
            curve = build_structure({"kind": kind}, torch.stack([theta_a, theta_b]), [a, b],
                                    device=solution.device)
            tensors = {k: v.to(solution.device) for k, v in saved["tensors"]["final"].items()}
            paths[kind] = curve.points(tensors, ts)
            bends[kind] = tensors["bend"]
        options = {"bn_policy": figure["bn_policy"], "precision": solution.precision,
                   "n_samples": figure["n_samples"], "progress_file": log}
        metrics = evaluate_train_test(solution.model, torch.cat(list(paths.values())),
                                      *solution.train_test, **options)
        shape = (len(paths), len(ts))
        for split, values in (("train", metrics.train), ("test", metrics.test)):
            arrays[f"pair{p}_{split}_loss"] = values.loss.reshape(shape)
            arrays[f"pair{p}_{split}_error"] = 1.0 - values.accuracy.reshape(shape)
        plane = plane_grid_through(theta_a, bends[curves[0]], theta_b, figure["plane_grid"],
                                   figure["plane_margin"])
        x, y = solution.train_subset(figure["n_samples"])
        plane_metrics = evaluate_points(solution.model, plane.points, x, y,
                                        bn_policy=figure["bn_policy"], bn_data=x,
                                        precision=solution.precision, progress_file=log)
        grid = (len(plane.ycoordinates), len(plane.xcoordinates))
        arrays[f"pair{p}_xcoordinates"] = plane.xcoordinates
        arrays[f"pair{p}_ycoordinates"] = plane.ycoordinates
        arrays[f"pair{p}_plane_train_loss"] = plane_metrics.loss.reshape(grid)
        arrays[f"pair{p}_plane_corners"] = plane.corners
        arrays[f"pair{p}_plane_paths"] = np.stack([plane.coordinates(points)
                                                   for points in paths.values()])
        seconds = time.perf_counter() - start
        n_points = len(ts) * len(paths) + grid[0] * grid[1]
        logging.info("pair %d (%s, %s): %d points in %.1f s", p, a, b, n_points, seconds)
        statuses.append("ok")
    arrays["t"] = ts
    io.write_h5(smk.output[0], arrays, {
        **figure, "pair_runs": [f"{a} {b}" for a, b in pairs], "pair_status": statuses,
        "paths": ["line", *curves], "plane_bend": curves[0],
        "bn_policy": metrics.train.bn_policy if solution is not None else "none",
        "n_samples_train": metrics.train.n_samples if solution is not None else 0,
        "orientation": "plane_train_loss[iy, ix] at origin theta_a + x e1 + y e2"})
