"""Monotonic linear interpolation (Goodfellow et al. 2015; Lucas et al. 2021): the loss on
(1 − α) θ₀ + α θ_T of every run of the MLI sweep, and each run's MLI metrics, in one process."""

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
mli = smk.params.mli
step = 1.0 / (mli["points"] - 1)
alphas = np.concatenate([np.linspace(0.0, 1.0, mli["points"]),
                         np.arange(1.0 + step, mli["alpha_max"] + 1e-9, step)])


def measure_line(name: str, settings: dict, init: str, final: str, status: str, curve_path: str,
                 metrics_path: str, log) -> None:
    """The interpolation curve and MLI metrics of run ``name`` (a skipped run: its reason)."""
    labels = {"run": name, "group": name.rsplit("-s", 1)[0], "optimizer": settings["optimizer"],
              "lr": settings["lr"], "batch_size": settings["batch_size"],
              "norm": settings["model"].get("norm", "none")}
    skipped = skip_reason(status, name)
    if skipped:
        logging.warning("%s", skipped)
        io.write_csv(pd.DataFrame(columns=["alpha", "split", "loss", "accuracy", "bn_policy",
                                           *labels]), curve_path)
        io.write_csv(pd.DataFrame([{**labels, "status": skipped}]), metrics_path)
        return
    run = load_solution(smk.input.data, smk.params.model, settings, final,
                        device=smk.params.device, precision=smk.params.precision)
    initial = load_run_model(smk.params.model, settings["model"], run.data, init)
    theta0 = get_flat_params(initial).to(run.device)
    surface = surface_1d(run.model, theta0, run.theta - theta0, alphas, run.train_test,
                         bn_policy="recompute", precision=run.precision, progress_file=log)
    metrics = mli_metrics(alphas, surface.arrays["train_loss"], theta0, run.theta,
                          tolerance=mli["tolerance"])
    io.write_csv(surface_1d_table(surface).assign(**labels), curve_path)
    io.write_csv(pd.DataFrame([{**labels, "status": "ok", "delta": metrics.delta,
                                "monotonic": metrics.monotonic, "distance": metrics.distance,
                                "relative_distance": metrics.relative_distance,
                                "tolerance": mli["tolerance"],
                                "bn_policy": surface.attrs["bn_policy"]}]), metrics_path)
    logging.info("%s: Δ = %.4g nats, distance %.4g", name, metrics.delta, metrics.distance)


with io.job_log(smk.log[0], exit_when_done=True) as log:
    for index, name in enumerate(smk.params.runs):
        measure_line(name, smk.params.settings[name], smk.input.init[index],
                     smk.input.final[index], smk.input.status[index],
                     smk.output.curves[index], smk.output.metrics[index], log)
