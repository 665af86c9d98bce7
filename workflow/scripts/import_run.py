"""A run given by its checkpoint files instead of trained (``runs.NAME.checkpoints``): every state
dict is loaded into the model (a file that does not fit is an error naming it) and written as a
trained run's files: ``final.pt``, ``trajectory.pt`` (``epoch-N``/``step-N``), ``metrics.csv``
(train and test loss and accuracy at each epoch checkpoint and at the final one, the epoch's step
as epochs x minibatches of the stated ``batch_size``, the stated ``lr``) and ``status.json``; or,
for ``import_run_init``, ``init.pt``."""

import logging
import math

import torch

from lossatlas import io
from lossatlas.evaluate import evaluate_train_test
from lossatlas.params import flat_params_from_state
from lossatlas.runs import load_run_model, load_solution

smk = snakemake  # noqa: F821
torch.set_num_threads(smk.threads)
settings = smk.params.settings
files = settings["checkpoints"]
with io.job_log(smk.log[0], exit_when_done=True) as log:
    if "final" not in smk.output.keys():
        run = load_solution(smk.input.data, smk.params.model, settings, files["init"],
                            verify=False)
        io.save_state_dict(run.model.state_dict(), smk.output[0])
        logging.info("imported %s", files["init"])
    else:
        run = load_solution(smk.input.data, smk.params.model, settings, files["final"],
                            device=smk.params.device, verify=False)
        trajectory = {label: load_run_model(smk.params.model, settings["model"], run.data,
                                            path, verify=False).state_dict()
                      for label, path in files.items() if label not in ("final", "init")}
        epochs = [int(label.removeprefix("epoch-")) for label in trajectory
                  if label.startswith("epoch-")]
        thetas = [flat_params_from_state(trajectory[f"epoch-{epoch}"], run.layout)
                  for epoch in epochs]
        points = torch.stack([*thetas, run.theta.cpu()]).to(run.device)
        metrics = evaluate_train_test(run.model, points, *run.train_test, progress_file=log)
        steps_per_epoch = math.ceil(len(run.data.y_train) / settings["batch_size"])
        history = [{"epoch": epoch, "step": epoch * steps_per_epoch,
                    "train_loss": float(metrics.train.loss[i]),
                    "train_acc": float(metrics.train.accuracy[i]),
                    "test_loss": float(metrics.test.loss[i]),
                    "test_acc": float(metrics.test.accuracy[i]), "lr": settings["lr"]}
                   for i, epoch in enumerate([*epochs, settings["epochs"]])]
        io.save_torch(trajectory, smk.output.trajectory)
        io.write_rows(history, smk.output.metrics)
        io.save_state_dict(run.model.state_dict(), smk.output.final)
        io.write_json({"status": "ok", "divergence": None,
                       "steps": settings["epochs"] * steps_per_epoch, "epochs": settings["epochs"],
                       "train_loss": history[-1]["train_loss"],
                       "train_acc": history[-1]["train_acc"], "test_acc": history[-1]["test_acc"],
                       "parameterization": {"kind": "full"}, "imported_from": files},
                      smk.output.status)
        logging.info("imported %d checkpoints of %s; final train loss %.4g", len(files),
                     smk.wildcards.run, history[-1]["train_loss"])
