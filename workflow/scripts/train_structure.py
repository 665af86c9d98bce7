"""Train the low-loss structures of one figure (curves between two solutions, or a complex through
N) as one vmapped batch with the same trainer as runs, in rounds until each one's convergence
criterion holds or the cap is reached: per structure, its trainable tensors (bend or connectors)
at init and final, per-epoch metrics at its reference point, and status (with the
``convergence`` record); a structure whose solution did not finish is skipped visibly, the
others train."""

import logging
from pathlib import Path

import torch

from lossatlas import io
from lossatlas.data import load_dataset
from lossatlas.parameterizations import build_structure
from lossatlas.params import get_flat_params
from lossatlas.runs import load_run_model, skip_reason
from lossatlas.train import Member, resolve_device, status_record, structure_training, train_members

smk = snakemake  # noqa: F821
torch.set_num_threads(smk.threads)
structures, runs, folders = smk.params.structures, smk.params.runs, smk.params.folders
files = {run: (final, status) for run, final, status in
         zip(runs, smk.input.final, smk.input.status)}


def write_skipped(name: str, structure: dict, reason: str) -> None:
    folder = Path(folders[name])
    io.save_torch({"parameterization": structure["spec"], "tensors": {}},
                  folder / "trainable.pt")
    with io.atomic_path(folder / "metrics.csv") as tmp:
        tmp.write_text("epoch,step,train_loss\n")
    io.write_json({"status": "skipped", "reason": reason.removeprefix("skipped: ")},
                  folder / "status.json")


with io.job_log(smk.log[0], exit_when_done=True) as log:
    device = resolve_device(smk.params.device)
    datasets, models, members, trained = {}, {}, [], []
    for name, structure in structures.items():
        points = structure["points"]
        logging.info("structure %s: %s through %s", name, structure["spec"], points)
        reasons = [reason for run in points if (reason := skip_reason(files[run][1], run))]
        if reasons:
            logging.warning("%s: %s", name, reasons[0])
            write_skipped(name, structure, reasons[0])
            continue
        first = runs[points[0]]
        key = (first["train_fraction"], first["label_noise"], first["seed"])
        if key not in datasets:
            datasets[key] = load_dataset(smk.input.data, train_fraction=first["train_fraction"],
                                         label_noise=first["label_noise"], seed=first["seed"])
        data = datasets[key]
        for run in points:   # a solution shared by several structures is read once
            if run not in models:
                models[run] = load_run_model(smk.params.model, runs[run]["model"], data,
                                             files[run][0])
        thetas = torch.stack([get_flat_params(models[run]) for run in points])
        settings, convergence = structure_training(structure["training"], checkpoint_epochs=(0,))
        members.append(Member(models[points[0]], data, settings, first["seed"],
                              build_structure(structure["spec"], thetas, points, device=device),
                              {"runs": {run: runs[run] for run in points},
                               "spec": structure["spec"]}, convergence))
        trained.append(name)
    if members:
        logging.info("training %d structure(s) as one batch: %s", len(members), ", ".join(trained))
        results = train_members(members, resume_path=smk.params.resume, device=device,
                                progress_file=log)
        for name, result in zip(trained, results):
            folder = Path(folders[name])
            io.save_torch({"parameterization": result.parameterization,
                           "tensors": result.trainable}, folder / "trainable.pt")
            io.write_rows(result.history, folder / "metrics.csv")
            io.write_json(status_record(result), folder / "status.json")
            logging.info("%s: finished with status %s after %d steps; converged: %s (%s)", name,
                         result.status, result.steps, result.convergence["converged"],
                         result.convergence["detail"])
    io.remove_file(smk.params.resume)
