"""Monotonic linear interpolation (Goodfellow et al. 2015; Lucas et al. 2021): the loss on
(1 − α) θ₀ + α θ_T of one run, and its MLI metrics."""

import logging

import numpy as np
import pandas as pd
import torch

from lossatlas import io
from lossatlas.landscape import mli_metrics, surface_1d, surface_1d_table
from lossatlas.params import get_flat_params
from lossatlas.runs import load_run_model, load_solution, skip_reason

smk = snakemake  # noqa: F821
torch.set_num_threads(smk.threads)
name, settings, mli = smk.wildcards.run, smk.params.settings, smk.params.mli
labels = {"run": name, "group": name.rsplit("-s", 1)[0], "optimizer": settings["optimizer"],
          "lr": settings["lr"], "batch_size": settings["batch_size"],
          "norm": settings["model"].get("norm", "none")}
step = 1.0 / (mli["points"] - 1)
alphas = np.concatenate([np.linspace(0.0, 1.0, mli["points"]),
                         np.arange(1.0 + step, mli["alpha_max"] + 1e-9, step)])
with io.job_log(smk.log[0]) as log:
    skipped = skip_reason(smk.input.status, name)
    if skipped:
        logging.warning("%s", skipped)
        io.write_csv(pd.DataFrame(columns=["alpha", "split", "loss", "accuracy", "bn_policy",
                                           *labels]), smk.output.curve)
        io.write_csv(pd.DataFrame([{**labels, "status": skipped}]), smk.output.metrics)
    else:
        run = load_solution(smk.input.data, smk.params.model, settings, smk.input.final,
                            device=smk.params.device, precision=smk.params.precision)
        initial = load_run_model(smk.params.model, settings["model"], run.data, smk.input.init)
        theta0 = get_flat_params(initial).to(run.device)
        surface = surface_1d(run.model, theta0, run.theta - theta0, alphas, run.train_test,
                             bn_policy="recompute", precision=run.precision, progress_file=log)
        metrics = mli_metrics(alphas, surface.arrays["train_loss"], theta0, run.theta,
                              tolerance=mli["tolerance"])
        io.write_csv(surface_1d_table(surface).assign(**labels), smk.output.curve)
        io.write_csv(pd.DataFrame([{**labels, "status": "ok", "delta": metrics.delta,
                                    "monotonic": metrics.monotonic, "distance": metrics.distance,
                                    "relative_distance": metrics.relative_distance,
                                    "tolerance": mli["tolerance"],
                                    "bn_policy": surface.attrs["bn_policy"]}]),
                     smk.output.metrics)
        logging.info("Δ = %.4g nats, distance %.4g", metrics.delta, metrics.distance)
