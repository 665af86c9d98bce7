"""Goldilocks zone: Tr/‖H‖_F of the full Hessian and of AᵀHA in random subspaces, and the fraction
of positive restricted eigenvalues, at the seeded init rescaled to every radius scale."""

import logging

import torch

from lossatlas import io
from lossatlas.curvature import seeded_subset
from lossatlas.data import load_dataset
from lossatlas.goldilocks import GoldilocksSettings, measure_goldilocks
from lossatlas.runs import build_run_model
from lossatlas.train import resolve_device

smk = snakemake  # noqa: F821
torch.set_num_threads(smk.threads)
config = smk.params.goldilocks
with io.job_log(smk.log[0], exit_when_done=True):
    device = resolve_device(smk.params.device)
    data = load_dataset(smk.input.data, train_fraction=smk.params.train_fraction,
                        label_noise=smk.params.label_noise, seed=config["seed"])
    x, y = data.x_train, data.y_train
    if config["n_samples"] is not None:
        x, y = seeded_subset(x, y, min(config["n_samples"], len(x)), config["seed"])
    settings = GoldilocksSettings(radius_scales=tuple(config["radius_scales"]),
                                  subspace_dim=config["subspace_dim"],
                                  subspaces=config["subspaces"],
                                  trace_samples=config["trace_samples"], seed=config["seed"])
    measurement = measure_goldilocks(
        lambda: build_run_model(smk.params.model, smk.params.knobs, data), x, y, settings, device)
    io.write_h5(smk.output[0], measurement.arrays,
                {**measurement.attrs, "model": smk.params.model, "model_knobs": smk.params.knobs,
                 "n_samples_setting": config["n_samples"], "overlay_dim": config["overlay_dim"],
                 "train_fraction": smk.params.train_fraction,
                 "label_noise": smk.params.label_noise, "n_train": len(data.x_train),
                 "device": str(device)})
    arrays = measurement.arrays
    logging.info("radius scales %s\n‖θ‖ %s\nfull Tr/‖H‖_F %s\nmean restricted Tr/‖·‖_F %s\n"
                 "mean positive fraction %s\n%d Hessian-vector products in %.1f s",
                 settings.radius_scales, arrays["radius"].numpy().round(3),
                 arrays["full_ratio"].numpy().round(3),
                 arrays["restricted_ratio"].mean(1).numpy().round(3),
                 arrays["positive_fraction"].mean(1).numpy().round(3),
                 measurement.attrs["hessian_products"], measurement.attrs["seconds"])
