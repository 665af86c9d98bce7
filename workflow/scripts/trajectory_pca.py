"""Loss surface on the PCA plane of a training trajectory, with the projected path (Li et al. 2018)."""

import json
import logging

import numpy as np
import torch

from lossatlas import io
from lossatlas.data import load_dataset
from lossatlas.evaluate import precision_for
from lossatlas.landscape import project_onto_plane, surface_2d, trajectory_pca
from lossatlas.params import get_flat_params, param_layout
from lossatlas.runs import (
    flat_checkpoints,
    load_run_model,
    load_trajectory,
    skip_reason,
)
from lossatlas.train import resolve_device

smk = snakemake  # noqa: F821
torch.set_num_threads(smk.threads)
settings = smk.params.settings
run = smk.wildcards.run
with io.job_log(smk.log[0]) as log:
    skipped = skip_reason(smk.input.status, run)
    if skipped:
        logging.warning("%s", skipped)
        io.write_h5(smk.output[0], {}, {"status": skipped, "run": run})
    else:
        device = resolve_device(smk.params.device)
        precision = precision_for(smk.params.precision, device)
        data = load_dataset(smk.input.data).to(device)
        model = load_run_model(smk.params.model, smk.params.model_knobs, data, smk.input.final)
        layout = param_layout(model)
        checkpoints = load_trajectory(smk.input.trajectory, "epoch")
        if len(checkpoints) < 3:
            raise ValueError(f"run {run} saved {len(checkpoints)} epoch checkpoints; the trajectory "
                             "PCA needs at least 3 (set checkpoint_epochs)")
        thetas = flat_checkpoints(checkpoints, layout)
        final = get_flat_params(model)
        labels = [str(epoch) for epoch, _ in checkpoints]
        if not torch.equal(thetas[-1], final):
            thetas, labels = torch.cat([thetas, final[None]]), labels + ["final"]
        pca = trajectory_pca(thetas)
        d1, d2 = pca.directions[0], pca.directions[1]
        path = np.asarray(project_onto_plane(thetas, final, d1, d2))
        span = np.ptp(path, axis=0).max()
        low = path.min(axis=0) - settings["margin"] * span
        high = path.max(axis=0) + settings["margin"] * span
        xs = np.linspace(low[0], high[0], settings["num"])
        ys = np.linspace(low[1], high[1], settings["num"])
        logging.info("PCA explained variance %s; %d x %d grid", pca.explained_variance_ratio,
                     len(xs), len(ys))
        surface = surface_2d(model, final.to(device), d1.to(device), d2.to(device), xs, ys,
                             (data.x_train, data.y_train, data.x_test, data.y_test),
                             bn_policy=settings["bn_policy"], precision=precision,
                             progress_file=log)
        io.write_h5(smk.output[0], {**surface.arrays, "path": path},
                    {**surface.attrs, **settings, "status": "ok", "run": run,
                     "path_labels": json.dumps(labels),
                     "explained_variance_ratio": json.dumps(
                         [float(v) for v in pca.explained_variance_ratio])})
