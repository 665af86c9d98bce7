"""A walk with SGD (Xing et al. 2018): training loss on the segments between consecutive saved
iterates θ_t, θ_{t+1}."""

import logging

import numpy as np
import pandas as pd
import torch

from lossatlas import io
from lossatlas.evaluate import evaluate_points
from lossatlas.landscape import segment_minima, segment_points, segment_profiles
from lossatlas.runs import flat_checkpoints, load_solution, load_trajectory, skip_reason

smk = snakemake  # noqa: F821
torch.set_num_threads(smk.threads)
settings, name = smk.params.settings, smk.wildcards.run
n = settings["points_per_segment"]
with io.job_log(smk.log[0], exit_when_done=True) as log:
    skipped = skip_reason(smk.input.status, name)
    if skipped:
        logging.warning("%s", skipped)
        io.write_csv(pd.DataFrame([{"run": name, "status": skipped}]), smk.output[0])
    else:
        checkpoints = load_trajectory(smk.input.trajectory, "step")[: settings["max_segments"] + 1]
        if len(checkpoints) < 2:
            raise ValueError(f"run {name} saved {len(checkpoints)} step checkpoints; the walk "
                             "needs at least 2 (set checkpoint_step_range)")
        run = load_solution(smk.input.data, smk.params.model, smk.params.run_settings, None,
                            device=smk.params.device, precision=smk.params.precision)
        iterates = flat_checkpoints(checkpoints, run.layout).to(run.device)
        segments = len(checkpoints) - 1
        logging.info("%d segments x %d points", segments, n)
        metrics = evaluate_points(run.model, segment_points(iterates, n), run.data.x_train,
                                  run.data.y_train, bn_policy="recompute",
                                  bn_data=run.data.x_train, precision=run.precision,
                                  progress_file=log)
        profiles = segment_profiles(metrics.loss, segments, n)
        minima = segment_minima(profiles)
        t = np.linspace(0.0, 1.0, n)
        steps = np.array([step for step, _ in checkpoints])
        starts = np.repeat(steps[:-1], n)
        io.write_csv(pd.DataFrame({
            "run": name, "status": "ok", "segment": np.repeat(np.arange(segments), n),
            "step": starts, "t": np.tile(t, segments),
            "position": starts + np.tile(t, segments) * np.repeat(np.diff(steps), n),
            "loss": profiles.reshape(-1), "is_iterate": np.tile((t == 0) | (t == 1), segments),
            "segment_min_interior": np.repeat(minima.interior, n),
            "bn_policy": metrics.bn_policy}), smk.output[0])
        logging.info("segment minima inside the segment: %.2f", minima.interior_fraction)
