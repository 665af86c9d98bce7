"""2D cuts through the origin (Fort & Jastrzebski 2019): the train loss on the plane of the first
two solutions of the run group and on the plane of the first run's init and solution (both in one
job), and the width of the low-loss region across each solution's ray at several radii; one HDF5
file per plane (``output.solutions``, ``output.init``)."""

import logging
import time

import torch

from lossatlas import io
from lossatlas.params import get_flat_params
from lossatlas.runs import load_run_model, load_solution, skip_reason
from lossatlas.wedge import plane_cut

ORIENTATION = ("train_loss[iy, ix] = L(xcoordinates[ix] * e1 + ycoordinates[iy] * e2) (nats), "
               "train_acc the same in percent, "
               "e1 = p1/|p1|, e2 = Gram-Schmidt of p2; rays: ray_losses[r, k, i] = "
               "L(ray_scales[k] * theta_r + ray_offsets[r, i] * e_perp_r)")

smk = snakemake  # noqa: F821
torch.set_num_threads(smk.threads)
figure, runs = smk.params.figure, smk.params.runs
origin, second = runs
planes = {
    "solutions": {"runs": [origin, second], "point_labels": ["origin", origin, second],
                  "ray_labels": [origin, second]},
    "init": {"runs": [origin], "point_labels": ["origin", f"init of {origin}", origin],
             "ray_labels": [origin]},
}
labels = {"group": origin.rsplit("-s", 1)[0], **figure}
with io.job_log(smk.log[0], exit_when_done=True) as log:
    skipped = {run: skip_reason(status, run) for run, status in zip(runs, smk.input.status)}
    skipped = {run: reason for run, reason in skipped.items() if reason}
    solution = None
    if origin not in skipped:
        solution = load_solution(smk.input.data, smk.params.model, smk.params.settings[origin],
                                 smk.input.final[0], device=smk.params.device,
                                 precision=smk.params.precision)

    def theta_of(path, run):
        model = load_run_model(smk.params.model, smk.params.settings[run]["model"], solution.data,
                               path)
        return get_flat_params(model).to(solution.device)

    for name, plane in planes.items():
        attrs = {**labels, "plane": name, "point_labels": plane["point_labels"],
                 "ray_labels": plane["ray_labels"]}
        reasons = [skipped[run] for run in plane["runs"] if run in skipped]
        if reasons:
            logging.warning("plane %s: %s", name, reasons[0])
            io.write_h5(smk.output[name], {}, {**attrs, "status": reasons[0]})
        else:
            theta_a = solution.theta
            if name == "solutions":
                p1, p2 = theta_a, theta_of(smk.input.final[1], second)
                rays = torch.stack([p1, p2])
            else:
                p1, p2 = theta_of(smk.input.init, origin), theta_a
                rays = theta_a[None]
            start = time.perf_counter()
            x, y = solution.data.x_train, solution.data.y_train
            cut = plane_cut(solution.model, p1, p2, rays, x, y, grid=figure["grid"],
                            margin=figure["margin"], scales=figure["radii"],
                            offsets=figure["offsets"], offset_range=figure["offset_range"],
                            bn_policy=figure["bn_policy"], bn_data=x,
                            precision=solution.precision, progress_file=log)
            seconds = time.perf_counter() - start
            n_points = cut.train_loss.size + cut.ray_losses.size + len(rays)
            logging.info("plane %s: %d points on %d samples in %.1f s (%.0f points/s)", name,
                         n_points, cut.n_samples, seconds, n_points / seconds)
            io.write_h5(smk.output[name], cut.arrays, {
                **attrs, "status": "ok", "orientation": ORIENTATION, "bn_policy": cut.bn_policy,
                "n_samples_evaluated": cut.n_samples, "n_points": n_points, "seconds": seconds,
                "device": str(solution.device)})
