"""Train one low-loss structure (a curve between two solutions, or a complex through N) with the
same trainer as runs, in rounds until its convergence criterion holds or the cap is reached: its
trainable tensors (bend or connectors) at init and final, per-epoch metrics at its reference point,
and status (with the ``convergence`` record); skipped visibly when a solution did not finish."""

import logging
from pathlib import Path

import torch

from lossatlas import io
from lossatlas.data import load_dataset
from lossatlas.parameterizations import build_structure
from lossatlas.params import get_flat_params
from lossatlas.runs import load_run_model, skip_reason
from lossatlas.train import resolve_device, status_record, structure_training, train_run

smk = snakemake  # noqa: F821
torch.set_num_threads(smk.threads)
structure, runs = smk.params.structure, smk.params.runs
names = list(runs)
with io.job_log(smk.log[0], exit_when_done=True) as log:
    logging.info("structure %s: %s through %s", smk.wildcards.structure, structure["spec"], names)
    reasons = [reason for run, status in zip(names, smk.input.status)
               if (reason := skip_reason(status, run))]
    if reasons:
        logging.warning("%s", reasons[0])
        io.save_torch({"parameterization": structure["spec"], "tensors": {}},
                      smk.output.trainable)
        with io.atomic_path(smk.output.metrics) as tmp:
            tmp.write_text("epoch,step,train_loss\n")
        io.write_json({"status": "skipped", "reason": reasons[0].removeprefix("skipped: ")},
                      smk.output.status)
    else:
        device = resolve_device(smk.params.device)
        first = runs[names[0]]
        data = load_dataset(smk.input.data, train_fraction=first["train_fraction"],
                            label_noise=first["label_noise"], seed=first["seed"])
        models = [load_run_model(smk.params.model, runs[run]["model"], data, path)
                  for run, path in zip(names, smk.input.final)]
        points = torch.stack([get_flat_params(model) for model in models])
        parameterization = build_structure(structure["spec"], points, names, device=device)
        settings, convergence = structure_training(structure["training"], checkpoint_epochs=(0,))
        result = train_run(models[0], data, settings, first["seed"],
                           parameterization=parameterization,
                           identity={"runs": runs, "spec": structure["spec"]},
                           convergence=convergence, resume_path=smk.params.resume,
                           device=device, progress_file=log)
        io.save_torch({"parameterization": result.parameterization,
                       "tensors": result.trainable}, smk.output.trainable)
        io.write_rows(result.history, smk.output.metrics)
        io.write_json(status_record(result), smk.output.status)
        logging.info("finished with status %s after %d steps; converged: %s (%s)", result.status,
                     result.steps, result.convergence["converged"], result.convergence["detail"])
    Path(smk.params.resume).unlink(missing_ok=True)
