"""Curvature of one run at one checkpoint (final or epoch-N): Hessian and Gauss–Newton top
eigenvalues, Hutch++ trace, SLQ density and gradient overlap on the run's training set; the top-k
eigenvectors at the final checkpoint (the Hessian directions of ``surface_2d``)."""

import dataclasses
import logging

import torch

from lossatlas import io
from lossatlas.curvature import CurvatureSettings, measure_curvature, seeded_subset
from lossatlas.functional import FunctionalModel
from lossatlas.runs import load_solution, load_trajectory, read_status, skip_reason

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
        history = io.read_rows(smk.input.metrics)
        if checkpoint == "final":
            run_model = load_solution(smk.input.data, smk.params.model, settings,
                                      smk.input.checkpoint, device=smk.params.device)
            epoch = read_status(smk.input.status)["epochs"]
        else:
            epoch = int(checkpoint.removeprefix("epoch-"))
            states = dict(load_trajectory(smk.input.checkpoint, "epoch"))
            if epoch not in states:
                raise ValueError(f"{smk.input.checkpoint} holds no checkpoint {checkpoint}; it has "
                                 f"epochs {sorted(states)} (set checkpoint_epochs of the run)")
            run_model = load_solution(smk.input.data, smk.params.model, settings, None,
                                      device=smk.params.device)
            run_model.model.load_state_dict(states[epoch])
        device, data = run_model.device, run_model.data
        row = [row for row in history if int(row["epoch"]) == epoch][-1]
        x, y = data.x_train, data.y_train
        if curvature["n_samples"] is not None:
            x, y = seeded_subset(x, y, min(curvature["n_samples"], len(x)), curvature["subset_seed"])
        fmodel = FunctionalModel(run_model.model, bn_mode=curvature["bn_mode"])
        final = checkpoint == "final"
        engine_settings = CurvatureSettings(
            **{field.name: curvature[field.name] for field in dataclasses.fields(CurvatureSettings)
               if field.name in curvature and field.name != "eigenvectors"},
            spectrum=final, eigenvectors=final or curvature["eigenvectors"])
        measurement = measure_curvature(fmodel, fmodel.theta0.to(device), x, y, engine_settings)
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
