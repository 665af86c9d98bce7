"""A walk with SGD (Xing et al. 2018): training loss on the segments between consecutive saved
iterates θ_t, θ_{t+1}."""

import logging

import numpy as np
import pandas as pd
import torch

from lossatlas import io
from lossatlas.data import load_dataset
from lossatlas.evaluate import evaluate_points, precision_for
from lossatlas.landscape import segment_minima, segment_points, segment_profiles
from lossatlas.params import param_layout
from lossatlas.runs import (
    build_run_model,
    flat_checkpoints,
    load_trajectory,
    skip_reason,
)
from lossatlas.train import resolve_device

smk = snakemake  # noqa: F821
torch.set_num_threads(smk.threads)
settings, run = smk.params.settings, smk.wildcards.run
n = settings["points_per_segment"]
with io.job_log(smk.log[0]) as log:
    skipped = skip_reason(smk.input.status, run)
    if skipped:
        logging.warning("%s", skipped)
        io.write_csv(pd.DataFrame([{"run": run, "status": skipped}]), smk.output[0])
    else:
        device = resolve_device(smk.params.device)
        precision = precision_for(smk.params.precision, device)
        data = load_dataset(smk.input.data).to(device)
        checkpoints = load_trajectory(smk.input.trajectory, "step")[: settings["max_segments"] + 1]
        if len(checkpoints) < 2:
            raise ValueError(f"run {run} saved {len(checkpoints)} step checkpoints; the walk needs "
                             "at least 2 (set checkpoint_step_range)")
        model = build_run_model(smk.params.model, smk.params.model_knobs, data)
        model.load_state_dict(checkpoints[0][1])
        iterates = flat_checkpoints(checkpoints, param_layout(model))
        segments = len(checkpoints) - 1
        logging.info("%d segments x %d points", segments, n)
        metrics = evaluate_points(model, segment_points(iterates, n), data.x_train, data.y_train,
                                  bn_policy="recompute", bn_data=data.x_train,
                                  precision=precision, progress_file=log)
        profiles = segment_profiles(metrics.loss, segments, n)
        minima = segment_minima(profiles)
        t = np.linspace(0.0, 1.0, n)
        steps = np.array([step for step, _ in checkpoints])
        io.write_csv(pd.DataFrame({
            "run": run, "status": "ok", "segment": np.repeat(np.arange(segments), n),
            "step": np.repeat(steps[:-1], n), "t": np.tile(t, segments),
            "position": np.repeat(steps[:-1], n) + np.tile(t, segments) * np.repeat(np.diff(steps), n),
            "loss": profiles.reshape(-1), "is_iterate": np.tile((t == 0) | (t == 1), segments),
            "segment_min_interior": np.repeat(minima.interior, n),
            "bn_policy": metrics.bn_policy}), smk.output[0])
        logging.info("segment minima inside the segment: %.2f", minima.interior_fraction)
