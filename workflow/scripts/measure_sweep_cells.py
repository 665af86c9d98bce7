"""Global structure of the cells of one row of a load x temperature sweep (Yang et al. 2021): per
cell, a quadratic Bézier curve trained between its first two seeds (all the row's curves as one
vmapped batch, each in rounds until its convergence criterion holds or the cap: columns
curve_converged, curve_epochs, curve_convergence) and mc of the train error and loss along it (BN
recomputed at every t), the linear CKA of the seeds' softmax outputs on mixup training inputs (mean
over ordered pairs) and the mean distance between the seeds' θ."""

import dataclasses
import logging
import time

import numpy as np
import torch

from lossatlas import io
from lossatlas.evaluate import evaluate_points, predict_points
from lossatlas.parameterizations import BezierCurve
from lossatlas.runs import build_run_model, load_solution, skip_reason
from lossatlas.stats import mode_connectivity
from lossatlas.sweeps import mixup_inputs
from lossatlas.taxonomy import mean_pairwise_cka, mean_pairwise_distance
from lossatlas.train import Member, resolve_device, structure_training, train_each_or_batch

smk = snakemake  # noqa: F821
torch.set_num_threads(smk.threads)
cells, settings, measure = smk.params.cells, smk.params.settings, smk.params.measurements
curve_training = measure["curve_training"]
curve_settings, convergence = structure_training(curve_training, checkpoint_epochs=())
files = {run: (final, status) for run, final, status in
         zip(smk.params.runs, smk.input.final, smk.input.status)}
ts = np.linspace(0.0, 1.0, measure["curve_points"])
rows, curves, saved = [], [], {}
with io.job_log(smk.log[0], exit_when_done=True) as log:
    started = time.perf_counter()
    for cell in cells:
        row = {"group": cell["group"], "load": cell["load"], "temperature": cell["temperature"],
               "seeds": len(cell["runs"])}
        reasons = [r for run in cell["runs"] if (r := skip_reason(files[run][1], run))]
        if reasons:
            logging.warning("%s: %s", cell["group"], reasons[0])
            rows.append({**row, "status": reasons[0]})
            continue
        solutions = [load_solution(smk.input.data, smk.params.model, settings[run], files[run][0],
                                   device=smk.params.device) for run in cell["runs"]]
        thetas = torch.stack([s.theta for s in solutions])
        x_mix = mixup_inputs(solutions[0].data.x_train, measure["cka_samples"],
                             measure["mixup_alpha"], seed=0)
        outputs = [predict_points(s.model, s.theta[None], x_mix)[0][0].numpy() for s in solutions]
        row.update(cka=mean_pairwise_cka(outputs),
                   seed_distance=mean_pairwise_distance(thetas.cpu().numpy()),
                   curve_pair=f"{cell['runs'][0]} {cell['runs'][1]}")
        template = build_run_model(smk.params.model, settings[cell["runs"][0]]["model"],
                                   solutions[0].data)
        curve = BezierCurve(thetas[:2], l2=curve_training["l2"])
        curves.append((row, curve, solutions[0],
                       Member(template, solutions[0].data, curve_settings, len(curves), curve,
                              convergence=convergence)))
        rows.append(row)
    logging.info("CKA and distances of %d cells in %.1f s", len(cells), time.perf_counter() - started)
    started = time.perf_counter()
    results = train_each_or_batch([member for *_, member in curves],
                                  device=resolve_device(smk.params.device),
                                  progress_file=log)
    logging.info("%d curves trained in %.1f s", len(curves), time.perf_counter() - started)
    for (row, curve, solution, _), result in zip(curves, results):
        record = result.convergence
        row.update(curve_converged=record["converged"], curve_epochs=record["epochs"],
                   curve_convergence=record["detail"])
        logging.info("%s: curve converged %s (%s)", row["group"], record["converged"],
                     record["detail"])
        if result.status != "ok":
            row["status"] = f"curve {result.status}: {result.divergence}"
            continue
        tensors = {k: v.to(solution.device) for k, v in result.trainable["final"].items()}
        x, y = solution.data.x_train, solution.data.y_train
        metrics = evaluate_points(solution.model, curve.points(tensors, ts), x, y,
                                  bn_policy=measure["bn_policy"], bn_data=x)
        error = 1.0 - metrics.accuracy
        row.update(status="ok", mc_error=mode_connectivity(error),
                   mc_loss=mode_connectivity(metrics.loss), curve_max_error=float(error.max()),
                   curve_bn_policy=metrics.bn_policy)
        saved[row["group"]] = result.trainable["final"]
    io.save_torch({"t": ts.tolist(), "bends": saved}, smk.output.curves)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    io.write_rows([{key: row.get(key, float("nan")) for key in columns} for row in rows], smk.output.cells)
