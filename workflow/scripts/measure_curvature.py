"""Curvature of one run at its checkpoints (``final`` or ``epoch-N``, one HDF5 file each, in one
process): Hessian and Gauss–Newton top eigenvalues, Hutch++ trace, SLQ density and gradient
overlap on the run's training set; the top-k eigenvectors at the final checkpoint (the Hessian
directions of ``surface_2d``)."""

import dataclasses
import logging

import torch

from lossatlas import io
from lossatlas.curvature import CurvatureSettings, measure_curvature, seeded_subset
from lossatlas.functional import FunctionalModel
from lossatlas.runs import load_solution, load_trajectory, read_status, skip_reason

smk = snakemake  # noqa: F821
torch.set_num_threads(smk.threads)
run, checkpoints = smk.params.run, smk.params.checkpoints
settings, curvature = smk.params.settings, smk.params.curvature
labels = {"run": run, "group": run.rsplit("-s", 1)[0],
          "optimizer": settings["optimizer"], "peak_lr": settings["lr"],
          "momentum": settings["momentum"], "batch_size": settings["batch_size"],
          "schedule": settings["schedule"], "norm": settings["model"].get("norm", "none")}


def checkpoint_states(run_model) -> dict[str, tuple[int, dict]]:
    """Checkpoint label -> (epoch, state dict) for every checkpoint this job measures."""
    states = {}
    if "final" in checkpoints:
        final_state = {key: value.clone() for key, value in run_model.model.state_dict().items()}
        states["final"] = (read_status(smk.input.status)["epochs"], final_state)
    along = [label for label in checkpoints if label != "final"]
    if along:
        saved = dict(load_trajectory(smk.input.trajectory, "epoch"))
        for label in along:
            epoch = int(label.removeprefix("epoch-"))
            if epoch not in saved:
                raise ValueError(f"{smk.input.trajectory} holds no checkpoint {label}; it has "
                                 f"epochs {sorted(saved)} (set checkpoint_epochs of the run)")
            states[label] = (epoch, saved[epoch])
    return states


with io.job_log(smk.log[0], exit_when_done=True):
    skipped = skip_reason(smk.input.status, run)
    if skipped:
        logging.warning("%s", skipped)
        for label, path in zip(checkpoints, smk.output):
            io.write_h5(path, {}, {**labels, "checkpoint": label, "status": skipped})
    else:
        history = io.read_rows(smk.input.metrics)
        run_model = load_solution(smk.input.data, smk.params.model, settings, smk.input.final,
                                  device=smk.params.device)
        device, data = run_model.device, run_model.data
        x, y = data.x_train, data.y_train
        if curvature["n_samples"] is not None:
            x, y = seeded_subset(x, y, min(curvature["n_samples"], len(x)), curvature["subset_seed"])
        states = checkpoint_states(run_model)
        for label, path in zip(checkpoints, smk.output):
            epoch, state = states[label]
            run_model.model.load_state_dict(state)
            row = [row for row in history if int(row["epoch"]) == epoch][-1]
            fmodel = FunctionalModel(run_model.model, bn_mode=curvature["bn_mode"])
            final = label == "final"
            engine_settings = CurvatureSettings(
                **{field.name: curvature[field.name]
                   for field in dataclasses.fields(CurvatureSettings)
                   if field.name in curvature and field.name != "eigenvectors"},
                spectrum=final, eigenvectors=final or curvature["eigenvectors"])
            measurement = measure_curvature(fmodel, fmodel.theta0.to(device), x, y,
                                            engine_settings)
            io.write_h5(path, measurement.arrays,
                        {**measurement.attrs, **labels, "checkpoint": label, "status": "ok",
                         "epoch": epoch, "step": int(row["step"]), "lr": float(row["lr"]),
                         "n_samples_setting": curvature["n_samples"],
                         "subset_seed": curvature["subset_seed"], "n_train": len(data.x_train),
                         "num_classes": data.num_classes, "device": str(device)})
            attrs = measurement.attrs
            logging.info("%s: λ_max %.4g, Tr H %.4g, |g| %.3g; seconds per algorithm: %s", label,
                         attrs["lambda_max"], attrs["trace"], attrs["gradient_norm"],
                         {key: round(value, 2) for key, value in attrs.items()
                          if key.endswith("_seconds")})
