"""Long and short directions from a solution (Fort & Jastrzebski 2019): the train loss along random
unit directions, the unit directions toward the other solutions of the run group and the top
Hessian eigenvectors, and along the segments to the other solutions, in one batched evaluation."""

import logging
import time

import numpy as np
import torch

from lossatlas import io
from lossatlas.curvature import hessian_directions, seeded_subset
from lossatlas.functional import FunctionalModel
from lossatlas.params import get_flat_params
from lossatlas.runs import load_run_model, load_solution, skip_reason
from lossatlas.wedge import distance_grid, long_short_profiles, random_unit_directions

smk = snakemake  # noqa: F821
torch.set_num_threads(smk.threads)
figure, curvature, runs = smk.params.figure, smk.params.curvature, smk.params.runs
origin = runs[0]
labels = {"origin": origin, "group": origin.rsplit("-s", 1)[0], "runs": runs, **figure}
with io.job_log(smk.log[0], exit_when_done=True) as log:
    skipped = {run: skip_reason(status, run) for run, status in zip(runs, smk.input.status)}
    skipped = {run: reason for run, reason in skipped.items() if reason}
    for reason in skipped.values():
        logging.warning("%s", reason)
    if origin in skipped:
        io.write_h5(smk.output[0], {}, {**labels, "status": skipped[origin], "skipped": skipped})
    else:
        solution = load_solution(smk.input.data, smk.params.model, smk.params.settings[origin],
                                 smk.input.final[0], device=smk.params.device,
                                 precision=smk.params.precision)
        theta, data = solution.theta, solution.data
        targets = [run for run in runs[1:] if run not in skipped]
        paths = dict(zip(runs, smk.input.final))
        target_thetas = torch.stack([
            get_flat_params(load_run_model(smk.params.model, smk.params.settings[run]["model"],
                                           data, paths[run])).to(solution.device)
            for run in targets]) if targets else theta.new_zeros(0, theta.numel())
        if targets:
            scale = float((target_thetas - theta).norm(dim=1).max())
            scale_from = "largest distance to another solution"
        else:
            scale = float(theta.norm())
            scale_from = "norm of the origin solution (every other solution skipped)"
        distances = distance_grid(figure["max_distance_factor"] * scale, figure["points"])

        x, y = data.x_train, data.y_train
        x_hessian, y_hessian = x, y
        if figure["n_samples"] is not None:
            x_hessian, y_hessian = seeded_subset(x, y, min(figure["n_samples"], len(x)),
                                                 figure["seed"])
        start = time.perf_counter()
        fmodel = FunctionalModel(solution.model, bn_mode=curvature["bn_mode"])
        eigen = hessian_directions(fmodel, theta, x_hessian, y_hessian,
                                   k=figure["hessian_directions"],
                                   chunk_size=curvature["chunk_size"], tol=curvature["tol"],
                                   max_iter=curvature["max_iter"], seed=figure["seed"])
        hessian_seconds = time.perf_counter() - start
        logging.info("top-%d Hessian eigenvalues %s (%d Lanczos iterations, converged %s, %.1f s)",
                     figure["hessian_directions"], np.round(eigen.eigenvalues.numpy(), 4).tolist(),
                     eigen.iterations, eigen.converged, hessian_seconds)

        random = random_unit_directions(theta.numel(), figure["random_directions"], figure["seed"])
        start = time.perf_counter()
        profiles = long_short_profiles(
            solution.model, theta, random, target_thetas, eigen.eigenvectors, distances,
            np.linspace(0.0, 1.0, figure["points"]), x, y, bn_policy=figure["bn_policy"],
            bn_data=x, precision=solution.precision, progress_file=log)
        evaluate_seconds = time.perf_counter() - start
        n_points = profiles.losses.size + profiles.segment_losses.size
        logging.info("%d points evaluated on %d samples in %.1f s (%.0f points/s)", n_points,
                     profiles.n_samples, evaluate_seconds, n_points / evaluate_seconds)
        io.write_h5(smk.output[0], {
            "distances": profiles.distances, "losses": profiles.losses,
            "accuracies": profiles.accuracies, "alphas": profiles.alphas,
            "segment_losses": profiles.segment_losses,
            "segment_accuracies": profiles.segment_accuracies,
            "target_distances": profiles.target_distances,
            "eigenvalues": eigen.eigenvalues.numpy()}, {
            **labels, "status": "ok", "skipped": skipped, "targets": targets,
            "kinds": profiles.kinds, "origin_loss": float(profiles.losses[0, 0]),
            "max_distance": float(distances[-1]), "distance_scale": scale,
            "distance_scale_from": scale_from, "distance_spacing": "quadratic",
            "random_normalization": "plain Gaussian, unit norm over all of theta "
                                    "(not filter-normalized)",
            "hessian_samples": len(x_hessian), "hessian_bn_mode": curvature["bn_mode"],
            "lanczos_iterations": eigen.iterations, "lanczos_converged": eigen.converged,
            "bn_policy": profiles.bn_policy, "n_samples_evaluated": profiles.n_samples,
            "n_points": n_points, "hessian_seconds": hessian_seconds,
            "evaluate_seconds": evaluate_seconds, "device": str(solution.device)})
