"""Roughness index around a solution (Wu, Du, Chen 2021): normalized total variation of many
filter-normalized random 1D training-loss profiles."""

import logging

import numpy as np
import pandas as pd
import torch

from lossatlas import io
from lossatlas.evaluate import evaluate_points
from lossatlas.landscape import line_points, load_directions, roughness_index
from lossatlas.params import normalize_direction
from lossatlas.runs import load_solution, skip_reason

smk = snakemake  # noqa: F821
torch.set_num_threads(smk.threads)
settings = smk.params.settings
radius = max(abs(settings["xmin"]), abs(settings["xmax"]))
alphas = np.linspace(-radius, radius, settings["roughness_points"])
name = smk.wildcards.run
with io.job_log(smk.log[0], exit_when_done=True) as log:
    skipped = skip_reason(smk.input.status, name)
    if skipped:
        logging.warning("%s", skipped)
        io.write_csv(pd.DataFrame([{"run": name, "status": skipped}]), smk.output[0])
    else:
        run = load_solution(smk.input.data, smk.params.model, smk.params.run_settings,
                            smk.input.final, device=smk.params.device,
                            precision=smk.params.precision)
        raw, _ = load_directions(smk.input.directions, run.layout)
        directions = [normalize_direction(d.to(run.device), run.theta, run.layout,
                                          settings["normalization"], settings["ignore_biasbn"])
                      for d in raw[2:]]
        points = torch.cat([line_points(run.theta, d, alphas) for d in directions])
        logging.info("%d directions x %d points", len(directions), len(alphas))
        metrics = evaluate_points(run.model, points, run.data.x_train, run.data.y_train,
                                  bn_policy=settings["bn_policy"], bn_data=run.data.x_train,
                                  precision=run.precision, progress_file=log)
        result = roughness_index(alphas, metrics.loss.reshape(len(directions), len(alphas)))
        io.write_csv(pd.DataFrame({
            "run": name, "status": "ok", "direction": np.arange(len(directions)),
            "normalized_tv": result.normalized_tv, "mean": result.mean, "std": result.std,
            "roughness_index": result.roughness_index, "radius": radius,
            "bn_policy": metrics.bn_policy}), smk.output[0])
