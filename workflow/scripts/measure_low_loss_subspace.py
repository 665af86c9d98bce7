"""A low-loss complex through N solutions (Fort & Jastrzebski 2019; Benton et al. 2021): train and
test loss and error on a barycentric lattice of every simplex of the trained complex and of the
linear simplex (convex hull) of the solutions, along every edge of both, and the train loss on the
plane through three solutions and on planes through two solutions and a connector; batched
evaluations, BN statistics recomputed at every point by default."""

import itertools
import logging
import time

import torch

from lossatlas import io
from lossatlas.evaluate import evaluate_points, evaluate_train_test
from lossatlas.parameterizations import build_structure
from lossatlas.params import get_flat_params
from lossatlas.runs import load_run_model, load_solution, skip_reason
from lossatlas.structures import (complex_weights, hull_weights, plane_grid_through,
                                  points_from_weights, segment_weights)

smk = snakemake  # noqa: F821
torch.set_num_threads(smk.threads)
figure, runs = smk.params.figure, smk.params.runs
attrs = {"runs": runs, **figure}
with io.job_log(smk.log[0], exit_when_done=True) as log:
    reasons = [r for run, status in zip(runs, smk.input.status) if (r := skip_reason(status, run))]
    reasons += [r for r in [skip_reason(smk.input.complex_status, "complex")] if r]
    if reasons:
        logging.warning("%s", reasons[0])
        io.write_h5(smk.output[0], {}, {**attrs, "status": reasons[0]})
    else:
        start = time.perf_counter()
        solution = load_solution(smk.input.data, smk.params.model, smk.params.settings[runs[0]],
                                 smk.input.final[0], device=smk.params.device,
                                 precision=smk.params.precision)
        modes = torch.stack([solution.theta] + [
            get_flat_params(load_run_model(smk.params.model, smk.params.settings[run]["model"],
                                           solution.data, path)).to(solution.device)
            for run, path in zip(runs[1:], smk.input.final[1:])])
        saved = io.load_torch(smk.input.complex)
        structure = build_structure({"kind": "complex", "connectors": figure["connectors"]},
                                    modes, runs, device=solution.device)
        tensors = {k: v.to(solution.device) for k, v in saved["tensors"]["final"].items()}
        vertices = structure.vertices(tensors)
        n_modes, n_vertices = structure.n_modes, len(vertices)
        connectors = list(range(n_modes, n_vertices))
        complex_edges = sorted({tuple(sorted(edge)) for index in range(n_modes)
                                for edge in itertools.combinations(structure.simplex(index), 2)})
        hull_edges = [(i, j) for i in range(n_modes) for j in range(i + 1, n_modes)]
        planes = {"solutions": (0, 1, 2), "two solutions and a connector": (0, connectors[0], 1),
                  "two other solutions and a connector": (1, connectors[0], 2)}
        weight_sets = {
            "complex": complex_weights(structure, figure["resolution"]),
            "hull": hull_weights(n_modes, n_vertices, figure["resolution"]),
            "complex_edges": segment_weights(n_vertices, complex_edges, figure["edge_points"]),
            "hull_edges": segment_weights(n_vertices, hull_edges, figure["edge_points"]),
        }
        grids = {name: plane_grid_through(*vertices[list(index)], figure["plane_grid"],
                                          figure["plane_margin"])
                 for name, index in planes.items()}
        points = torch.cat([points_from_weights(w, vertices) for w in weight_sets.values()])
        metrics = evaluate_train_test(solution.model, points, *solution.train_test,
                                      bn_policy=figure["bn_policy"], n_samples=figure["n_samples"],
                                      precision=solution.precision, progress_file=log)
        x, y = solution.train_subset(figure["n_samples"])
        plane_losses = evaluate_points(
            solution.model, torch.cat([grid.points for grid in grids.values()]), x, y,
            bn_policy=figure["bn_policy"], bn_data=x,
            precision=solution.precision, progress_file=log).loss
        arrays, offset, plane_offset = {}, 0, 0
        for name, weights in weight_sets.items():
            arrays[f"{name}_weights"] = weights
            for split, values in (("train", metrics.train), ("test", metrics.test)):
                arrays[f"{name}_{split}_loss"] = values.loss[offset:offset + len(weights)]
                arrays[f"{name}_{split}_error"] = 1 - values.accuracy[offset:offset + len(weights)]
            offset += len(weights)
        for p, (name, grid) in enumerate(grids.items()):
            size = (len(grid.ycoordinates), len(grid.xcoordinates))
            arrays[f"plane{p}_xcoordinates"] = grid.xcoordinates
            arrays[f"plane{p}_ycoordinates"] = grid.ycoordinates
            arrays[f"plane{p}_train_loss"] = plane_losses[
                plane_offset:plane_offset + size[0] * size[1]].reshape(size)
            arrays[f"plane{p}_corners"] = grid.corners
            arrays[f"plane{p}_vertices"] = grid.coordinates(vertices)
            plane_offset += size[0] * size[1]
        seconds = time.perf_counter() - start
        logging.info("%d simplex and edge points (train and test) and %d plane points (train) "
                     "in %.1f s", len(points), len(plane_losses), seconds)
        io.write_h5(smk.output[0], arrays, {
            **attrs, "status": "ok", "n_modes": n_modes, "n_connectors": len(connectors),
            "complex_edges": complex_edges, "hull_edges": hull_edges,
            "planes": list(planes), "plane_vertices": list(planes.values()),
            "bn_policy": metrics.train.bn_policy, "n_samples_train": metrics.train.n_samples,
            "seconds": seconds, "n_points": len(points) + len(plane_losses),
            "orientation": "plane{p}_train_loss[iy, ix] at origin + x e1 + y e2"})
