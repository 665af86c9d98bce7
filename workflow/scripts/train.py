"""Train one run of the sweep in its parameterization: writes init, trajectory, final checkpoints,
the trainable tensors (parameterized runs), metrics and status."""

import json
import logging
from pathlib import Path

import torch

from lossatlas import io
from lossatlas.data import load_dataset
from lossatlas.parameterizations import build_parameterization, scale_parameters_
from lossatlas.params import get_flat_params
from lossatlas.runs import build_run_model
from lossatlas.train import TrainSettings, init_model, resolve_device, status_record, train_run

smk = snakemake  # noqa: F821
torch.set_num_threads(smk.threads)
settings = json.loads(smk.params.settings)
with io.job_log(smk.log[0]) as log:
    logging.info("run %s settings %s", smk.wildcards.run, settings)
    device = resolve_device(smk.params.device)
    data = load_dataset(smk.input.data, train_fraction=settings["train_fraction"],
                        label_noise=settings["label_noise"], seed=settings["seed"])
    model = init_model(lambda: build_run_model(smk.params.model, settings["model"], data),
                       settings["seed"])
    if smk.input.init:
        model.load_state_dict(io.load_state_dict(smk.input.init[0]))
        logging.info("initialized from %s", smk.input.init[0])
    scale_parameters_(model, settings["init_scale"])
    parameterization = build_parameterization(settings["parameterization"],
                                              get_flat_params(model), device=device)
    logging.info("parameterization %s", parameterization.describe())
    train_fields = TrainSettings.__dataclass_fields__
    train_settings = TrainSettings(**{k: settings[k] for k in train_fields if k in settings})
    identity = {k: v for k, v in settings.items() if k not in train_fields}
    result = train_run(model, data, train_settings, settings["seed"],
                       parameterization=parameterization, identity=identity,
                       resume_path=smk.params.resume, device=device, progress_file=log)
    io.save_state_dict(result.init_state, smk.output.init)
    io.save_torch(result.trajectory, smk.output.trajectory)
    io.save_torch({"parameterization": result.parameterization, "tensors": result.trainable},
                  smk.output.trainable)
    io.write_rows(result.history, smk.output.metrics)
    io.save_state_dict(result.final_state, smk.output.final)
    io.write_json(status_record(result), smk.output.status)
    logging.info("finished with status %s after %d steps%s", result.status, result.steps,
                 f" ({result.divergence})" if result.divergence else "")
    Path(smk.params.resume).unlink(missing_ok=True)
