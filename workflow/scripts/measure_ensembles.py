"""Ensembles (Fort, Hu & Lakshminarayanan 2019; Fort & Jastrzebski 2019): test-set softmax outputs
of K members of four kinds, each starting from the same solution θ* (the run group's first run):
independent solutions (the group's seeds), points of θ*'s simplex in the trained low-loss complex
(θ* and Dirichlet(1) samples), snapshots along θ*'s training run (final and the latest epoch
checkpoints), and random perturbations of θ* kept below train loss L(θ*) + δ; one batched
prediction, BN statistics recomputed at every point by default."""

import logging
import time

import numpy as np
import torch

from lossatlas import io
from lossatlas.evaluate import evaluate_points, predict_points
from lossatlas.parameterizations import build_structure
from lossatlas.params import get_flat_params
from lossatlas.runs import (flat_checkpoints, load_run_model, load_solution, load_trajectory,
                            skip_reason)
from lossatlas.stats import radius_within
from lossatlas.structures import dirichlet_weights, points_from_weights
from lossatlas.wedge import direction_points, distance_grid, random_unit_directions

smk = snakemake  # noqa: F821
torch.set_num_threads(smk.threads)
figure, runs, modes = smk.params.figure, smk.params.runs, smk.params.modes
members, anchor = figure["members"], runs[0]
attrs = {"runs": runs, "anchor": anchor, "modes": modes, **figure}
with io.job_log(smk.log[0], exit_when_done=True) as log:
    reasons = [r for run, status in zip(runs, smk.input.status) if (r := skip_reason(status, run))]
    reasons += [r for r in [skip_reason(smk.input.complex_status, "complex")] if r]
    if reasons:
        logging.warning("%s", reasons[0])
        io.write_h5(smk.output[0], {}, {**attrs, "status": reasons[0]})
    else:
        start = time.perf_counter()
        solution = load_solution(smk.input.data, smk.params.model, smk.params.settings[anchor],
                                 smk.input.final[0], device=smk.params.device,
                                 precision=smk.params.precision)
        data, theta = solution.data, solution.theta

        def theta_of(run, path):
            return get_flat_params(load_run_model(smk.params.model,
                                                  smk.params.settings[run]["model"], data,
                                                  path)).to(solution.device)

        kinds = {"independent": torch.stack([theta_of(run, path)
                                             for run, path in zip(runs, smk.input.final)])}
        saved = io.load_torch(smk.input.complex)
        mode_thetas = torch.stack([theta_of(run, path)
                                   for run, path in zip(modes, smk.input.mode_final)])
        structure = build_structure({"kind": "complex", "connectors": len(
            saved["tensors"]["final"]["connectors"])}, mode_thetas, modes, device=solution.device)
        vertices = structure.vertices({k: v.to(solution.device)
                                       for k, v in saved["tensors"]["final"].items()})
        simplex = structure.simplex(0)
        weights = np.zeros((members, len(vertices)))
        weights[0, 0] = 1.0
        weights[1:, simplex] = dirichlet_weights(members - 1, len(simplex), figure["seed"])
        kinds["complex simplex"] = points_from_weights(weights, vertices)
        checkpoints = load_trajectory(smk.input.trajectory)
        last_epoch = smk.params.settings[anchor]["epochs"]
        latest = [(e, s) for e, s in checkpoints if 0 < e < last_epoch][-(members - 1):][::-1]
        kinds["snapshots"] = torch.cat([theta[None], flat_checkpoints(latest, solution.layout)
                                        .to(solution.device)])
        snapshot_epochs = [last_epoch] + [e for e, _ in latest]
        directions = random_unit_directions(theta.numel(), members - 1, figure["seed"])
        distances = distance_grid(figure["perturbation_max_distance"],
                                  figure["perturbation_points"])
        profiles = evaluate_points(solution.model, direction_points(theta, directions, distances),
                                   data.x_train, data.y_train, bn_policy=figure["bn_policy"],
                                   bn_data=data.x_train, precision=solution.precision,
                                   progress_file=log).loss.reshape(members - 1, len(distances))
        threshold = float(profiles[:, 0].mean()) + figure["perturbation_delta"]
        radii = np.array([radius_within(distances, profile, threshold) for profile in profiles])
        kinds["perturbations"] = torch.cat([theta[None], theta + torch.as_tensor(
            radii, dtype=theta.dtype, device=theta.device)[:, None] * directions.to(theta)])
        points = torch.cat(list(kinds.values()))
        probabilities, policy = predict_points(solution.model, points, data.x_test,
                                               bn_policy=figure["bn_policy"], bn_data=data.x_train,
                                               precision=solution.precision, progress_file=log)
        train_loss = evaluate_points(solution.model, points, data.x_train, data.y_train,
                                     bn_policy=figure["bn_policy"], bn_data=data.x_train,
                                     precision=solution.precision).loss
        test_acc = (probabilities.argmax(-1) == data.y_test.cpu()).double().mean(-1).numpy()
        seconds = time.perf_counter() - start
        logging.info("%d members of %d kinds in %.1f s", len(points), len(kinds), seconds)
        shape = (len(kinds), members)
        io.write_h5(smk.output[0], {
            "probabilities": probabilities.reshape(*shape, *probabilities.shape[1:]),
            "y_test": data.y_test.cpu(), "train_loss": train_loss.reshape(shape),
            "test_acc": test_acc.reshape(shape),
            "distance_from_anchor": (points - theta).norm(dim=1).cpu().reshape(shape),
            "perturbation_radii": radii, "perturbation_distances": distances,
            "perturbation_profiles": profiles, "snapshot_epochs": np.array(snapshot_epochs),
        }, {**attrs, "status": "ok", "kinds": list(kinds), "bn_policy": policy,
            "perturbation_threshold": threshold, "seconds": seconds,
            "n_test": int(data.y_test.numel())})
