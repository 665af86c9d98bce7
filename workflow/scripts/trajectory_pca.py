"""Loss surface on the PCA plane of a training trajectory, with the projected path (Li et al. 2018).

Two files, laid out as tomgoldstein/loss-landscape's ``plot_2D.py`` reads its surface, projection and
PCA-direction files: the surface (``landscape.ORIENTATION_2D``) with the path as ``proj_xcoord`` /
``proj_ycoord`` and ``explained_variance_ratio_``, and the PCA directions ``(2, D)`` with
``explained_variance_ratio_``.
"""

import json
import logging

import numpy as np
import torch

from lossatlas import io
from lossatlas.landscape import pca_arrays, save_directions, surface_2d, trajectory_pca
from lossatlas.runs import flat_checkpoints, load_solution, load_trajectory, skip_reason

smk = snakemake  # noqa: F821
torch.set_num_threads(smk.threads)
settings = smk.params.settings
name = smk.wildcards.run
with io.job_log(smk.log[0], exit_when_done=True) as log:
    skipped = skip_reason(smk.input.status, name)
    if skipped:
        logging.warning("%s", skipped)
        for path in smk.output:
            io.write_h5(path, {}, {"status": skipped, "run": name})
    else:
        run = load_solution(smk.input.data, smk.params.model, smk.params.run_settings,
                            smk.input.final, device=smk.params.device,
                            precision=smk.params.precision)
        checkpoints = load_trajectory(smk.input.trajectory, "epoch")
        if len(checkpoints) < 3:
            raise ValueError(f"run {name} saved {len(checkpoints)} epoch checkpoints; the "
                             "trajectory PCA needs at least 3 (set checkpoint_epochs)")
        thetas = flat_checkpoints(checkpoints, run.layout).to(run.device)
        labels = [str(epoch) for epoch, _ in checkpoints]
        if not torch.equal(thetas[-1], run.theta):
            thetas, labels = torch.cat([thetas, run.theta[None]]), labels + ["final"]
        pca = trajectory_pca(thetas)
        d1, d2 = pca.directions[0].to(run.device), pca.directions[1].to(run.device)
        path = pca.coordinates
        span = np.ptp(path, axis=0).max()
        low = path.min(axis=0) - settings["margin"] * span
        high = path.max(axis=0) + settings["margin"] * span
        xs = np.linspace(low[0], high[0], settings["num"])
        ys = np.linspace(low[1], high[1], settings["num"])
        logging.info("PCA explained variance %s; %d x %d grid", pca.explained_variance_ratio,
                     len(xs), len(ys))
        surface = surface_2d(run.model, run.theta, d1, d2, xs, ys, run.train_test,
                             bn_policy=settings["bn_policy"], precision=run.precision,
                             progress_file=log)
        attrs = {"status": "ok", "run": name,
                 "explained_variance_ratio": json.dumps(
                     [float(v) for v in pca.explained_variance_ratio])}
        io.write_h5(smk.output.surface, {**surface.arrays, **pca_arrays(pca)},
                    {**settings, **surface.attrs, **attrs, "path_labels": json.dumps(labels)})
        save_directions(smk.output.directions, pca.directions, run.layout,
                        {**attrs, "rows": "0, 1: unit PCA directions of the path's offsets "
                                          "from its last point"},
                        {"explained_variance_ratio_": pca.explained_variance_ratio})
