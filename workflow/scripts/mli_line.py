"""Monotonic linear interpolation (Goodfellow et al. 2015; Lucas et al. 2021): the loss on
(1 − α) θ₀ + α θ_T of one run, and its MLI metrics."""

import logging

import numpy as np
import pandas as pd
import torch

from lossatlas import io
from lossatlas.data import load_dataset
from lossatlas.evaluate import precision_for
from lossatlas.landscape import mli_metrics, surface_1d, surface_1d_table
from lossatlas.params import get_flat_params
from lossatlas.runs import load_run_model, skip_reason
from lossatlas.train import resolve_device

smk = snakemake  # noqa: F821
torch.set_num_threads(smk.threads)
run, settings, mli = smk.wildcards.run, smk.params.settings, smk.params.mli
labels = {"run": run, "group": run.rsplit("-s", 1)[0], "optimizer": settings["optimizer"],
          "lr": settings["lr"], "batch_size": settings["batch_size"],
          "norm": settings["model"].get("norm", "none")}
step = 1.0 / (mli["points"] - 1)
alphas = np.concatenate([np.linspace(0.0, 1.0, mli["points"]),
                         np.arange(1.0 + step, mli["alpha_max"] + 1e-9, step)])
with io.job_log(smk.log[0]) as log:
    skipped = skip_reason(smk.input.status, run)
    if skipped:
        logging.warning("%s", skipped)
        io.write_csv(pd.DataFrame(columns=["alpha", "split", "loss", "accuracy", "bn_policy",
                                           *labels]), smk.output.curve)
        io.write_csv(pd.DataFrame([{**labels, "status": skipped}]), smk.output.metrics)
    else:
        device = resolve_device(smk.params.device)
        precision = precision_for(smk.params.precision, device)
        data = load_dataset(smk.input.data).to(device)
        model = load_run_model(smk.params.model, settings["model"], data, smk.input.final)
        initial = load_run_model(smk.params.model, settings["model"], data, smk.input.init)
        theta0, theta_final = get_flat_params(initial).to(device), get_flat_params(model).to(device)
        surface = surface_1d(model, theta0, theta_final - theta0, alphas,
                             (data.x_train, data.y_train, data.x_test, data.y_test),
                             bn_policy="recompute", precision=precision,
                             progress_file=log)
        metrics = mli_metrics(alphas, surface.arrays["train_loss"], theta0, theta_final,
                              tolerance=mli["tolerance"])
        io.write_csv(surface_1d_table(surface).assign(**labels), smk.output.curve)
        io.write_csv(pd.DataFrame([{**labels, "status": "ok", "delta": metrics.delta,
                                    "monotonic": metrics.monotonic, "distance": metrics.distance,
                                    "relative_distance": metrics.relative_distance,
                                    "tolerance": mli["tolerance"],
                                    "bn_policy": surface.attrs["bn_policy"]}]),
                     smk.output.metrics)
        logging.info("Δ = %.4g nats, distance %.4g", metrics.delta, metrics.distance)
