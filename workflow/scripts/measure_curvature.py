"""Curvature of one run at one checkpoint (final or epoch-N): Hessian and Gauss–Newton top
eigenvalues, Hutch++ trace, SLQ density and gradient overlap on the run's training set."""

import dataclasses
import json
import logging
from pathlib import Path

import pandas as pd
import torch

from lossatlas import io
from lossatlas.curvature import CurvatureSettings, measure_curvature, seeded_subset
from lossatlas.data import load_dataset
from lossatlas.functional import FunctionalModel
from lossatlas.runs import build_run_model, load_run_model, load_trajectory, skip_reason
from lossatlas.train import resolve_device

smk = snakemake  # noqa: F821
torch.set_num_threads(smk.threads)
run, checkpoint = smk.wildcards.run, smk.wildcards.checkpoint
settings, curvature = smk.params.settings, smk.params.curvature
labels = {"run": run, "group": run.rsplit("-s", 1)[0], "checkpoint": checkpoint,
          "optimizer": settings["optimizer"], "peak_lr": settings["lr"],
          "momentum": settings["momentum"], "batch_size": settings["batch_size"],
          "schedule": settings["schedule"], "norm": settings["model"].get("norm", "none")}
with io.job_log(smk.log[0]):
    skipped = skip_reason(smk.input.status, run)
    if skipped:
        logging.warning("%s", skipped)
        io.write_h5(smk.output[0], {}, {**labels, "status": skipped})
    else:
        device = resolve_device(smk.params.device)
        data = load_dataset(smk.input.data, train_fraction=settings["train_fraction"],
                            label_noise=settings["label_noise"], seed=settings["seed"])
        history = pd.read_csv(smk.input.metrics)
        if checkpoint == "final":
            model = load_run_model(smk.params.model, settings["model"], data, smk.input.checkpoint)
            epoch = json.loads(Path(smk.input.status).read_text())["epochs"]
        else:
            epoch = int(checkpoint.removeprefix("epoch-"))
            states = dict(load_trajectory(smk.input.checkpoint, "epoch"))
            if epoch not in states:
                raise ValueError(f"{smk.input.checkpoint} holds no checkpoint {checkpoint}; it has "
                                 f"epochs {sorted(states)} (set checkpoint_epochs of the run)")
            model = build_run_model(smk.params.model, settings["model"], data)
            model.load_state_dict(states[epoch])
        row = history[history["epoch"] == epoch].iloc[-1]
        x, y = data.x_train, data.y_train
        if curvature["n_samples"] is not None:
            x, y = seeded_subset(x, y, min(curvature["n_samples"], len(x)), curvature["subset_seed"])
        fmodel = FunctionalModel(model.to(device), bn_mode=curvature["bn_mode"])
        engine_settings = CurvatureSettings(
            **{field.name: curvature[field.name] for field in dataclasses.fields(CurvatureSettings)
               if field.name in curvature}, spectrum=checkpoint == "final")
        measurement = measure_curvature(fmodel, fmodel.theta0.to(device), x.to(device),
                                        y.to(device), engine_settings)
        io.write_h5(smk.output[0], measurement.arrays,
                    {**measurement.attrs, **labels, "status": "ok", "epoch": epoch,
                     "step": int(row["step"]), "lr": float(row["lr"]),
                     "n_samples_setting": curvature["n_samples"],
                     "subset_seed": curvature["subset_seed"], "n_train": len(data.x_train),
                     "num_classes": data.num_classes, "device": str(device)})
        attrs = measurement.attrs
        logging.info("λ_max %.4g, Tr H %.4g, |g| %.3g; seconds per algorithm: %s",
                     attrs["lambda_max"], attrs["trace"], attrs["gradient_norm"],
                     {key: round(value, 2) for key, value in attrs.items()
                      if key.endswith("_seconds")})
