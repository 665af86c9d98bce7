"""Roughness index around a solution (Wu, Du, Chen 2021): normalized total variation of many
filter-normalized random 1D training-loss profiles."""

import logging

import numpy as np
import pandas as pd
import torch

from lossatlas import io
from lossatlas.data import load_dataset
from lossatlas.evaluate import evaluate_points, precision_for
from lossatlas.landscape import line_points, load_directions, roughness_index
from lossatlas.params import get_flat_params, normalize_direction, param_layout
from lossatlas.runs import load_run_model, skip_reason
from lossatlas.train import resolve_device

smk = snakemake  # noqa: F821
torch.set_num_threads(smk.threads)
settings = smk.params.settings
radius = max(abs(settings["xmin"]), abs(settings["xmax"]))
alphas = np.linspace(-radius, radius, settings["roughness_points"])
run = smk.wildcards.run
with io.job_log(smk.log[0]) as log:
    skipped = skip_reason(smk.input.status, run)
    if skipped:
        logging.warning("%s", skipped)
        io.write_csv(pd.DataFrame([{"run": run, "status": skipped}]), smk.output[0])
    else:
        device = resolve_device(smk.params.device)
        precision = precision_for(smk.params.precision, device)
        data = load_dataset(smk.input.data).to(device)
        model = load_run_model(smk.params.model, smk.params.model_knobs, data, smk.input.final)
        layout = param_layout(model)
        theta = get_flat_params(model)
        raw, _ = load_directions(smk.input.directions, layout)
        directions = [normalize_direction(d, theta, layout, settings["normalization"],
                                          settings["ignore_biasbn"]) for d in raw[2:]]
        points = torch.cat([line_points(theta, d, alphas) for d in directions])
        logging.info("%d directions x %d points", len(directions), len(alphas))
        metrics = evaluate_points(model, points, data.x_train, data.y_train,
                                  bn_policy=settings["bn_policy"], bn_data=data.x_train,
                                  precision=precision, progress_file=log)
        result = roughness_index(alphas, metrics.loss.reshape(len(directions), len(alphas)))
        io.write_csv(pd.DataFrame({
            "run": run, "status": "ok", "direction": np.arange(len(directions)),
            "normalized_tv": result.normalized_tv, "mean": result.mean, "std": result.std,
            "roughness_index": result.roughness_index, "radius": radius,
            "bn_policy": metrics.bn_policy}), smk.output[0])
