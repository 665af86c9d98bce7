"""Curvature along training of the runs of one sweep (Fort & Jastrzebski 2019; Yang et al.
2021): λ_max and Tr H on a seeded training subset, ‖θ‖ and the run's train/test metrics at every
saved epoch checkpoint (``epochs: all``) or at its final point (``epochs: final``); one row per
run and epoch, a diverged run as one row with its reason."""

import logging
import time

import torch

from lossatlas import io
from lossatlas.functional import FunctionalModel
from lossatlas.params import flat_params_from_state
from lossatlas.runs import load_solution, load_trajectory, skip_reason
from lossatlas.sweeps import sharpness

smk = snakemake  # noqa: F821
torch.set_num_threads(smk.threads)
runs, settings, measure = smk.params.runs, smk.params.settings, smk.params.measurements
rows = []
with io.job_log(smk.log[0], exit_when_done=True):
    for run, trajectory, final, status, metrics in zip(
            runs, smk.input.trajectory, smk.input.final, smk.input.status, smk.input.metrics):
        labels = {"run": run, "group": run.rsplit("-s", 1)[0], "seed": settings[run]["seed"]}
        reason = skip_reason(status, run)
        if reason:
            logging.warning("%s", reason)
            rows.append({**labels, "epoch": None, "status": reason})
            continue
        history = {int(row["epoch"]): row for row in io.read_rows(metrics)}
        solution = load_solution(smk.input.data, smk.params.model, settings[run], final,
                                 device=smk.params.device)
        if smk.params.epochs == "all":
            points = load_trajectory(trajectory, "epoch")
        else:
            points = [(max(history), solution.model.state_dict())]
        started = time.perf_counter()
        for epoch, state in points:
            solution.model.load_state_dict(state)
            fmodel = FunctionalModel(solution.model, bn_mode="eval")
            theta = flat_params_from_state(state, fmodel.layout).to(solution.device)
            measured = sharpness(fmodel, theta, solution.data.x_train, solution.data.y_train,
                                 n_samples=min(measure["hessian_samples"], len(solution.data.y_train)),
                                 lanczos_iterations=measure["lanczos_iterations"],
                                 trace_samples=measure["trace_samples"])
            row = history[epoch]
            rows.append({**labels, "epoch": epoch, "status": "ok",
                         "lambda_max": measured.lambda_max, "trace": measured.trace,
                         "hessian_samples": measured.n_samples,
                         "hessian_products": measured.products,
                         "param_norm": float(theta.norm()),
                         "train_loss": float(row["train_loss"]),
                         "train_error": 1.0 - float(row["train_acc"]),
                         "test_error": 1.0 - float(row["test_acc"])})
        logging.info("%s: %d checkpoint(s) in %.1f s; final λ_max %.4g, Tr H %.4g", run,
                     len(points), time.perf_counter() - started, rows[-1]["lambda_max"],
                     rows[-1]["trace"])
    columns = list(dict.fromkeys(key for row in rows for key in row))
    io.write_rows([{key: row.get(key, float("nan")) for key in columns} for row in rows], smk.output[0])
