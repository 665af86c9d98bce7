"""Loss and accuracy on the line through the LB and SB solutions (and LB -> continuation)."""

import logging

import numpy as np
import pandas as pd
import torch

from lossatlas import io
from lossatlas.data import load_dataset
from lossatlas.evaluate import precision_for
from lossatlas.landscape import surface_1d, surface_1d_table
from lossatlas.params import get_flat_params
from lossatlas.runs import load_run_model, read_status
from lossatlas.train import resolve_device

smk = snakemake  # noqa: F821
torch.set_num_threads(smk.threads)
with io.job_log(smk.log[0]) as log:
    device = resolve_device(smk.params.device)
    precision = precision_for(smk.params.precision, device)
    data = load_dataset(smk.input.data).to(device)
    arrays = (data.x_train, data.y_train, data.x_test, data.y_test)
    alphas = np.linspace(smk.params.alpha_min, smk.params.alpha_max, smk.params.points)
    lines = [("lb_to_sb", lb, sb) for lb, sb in zip(smk.params.large_batch, smk.params.small_batch)]
    lines += [("lb_to_continuation", lb, c)
              for lb, c in zip(smk.params.large_batch, smk.params.continuation)]
    finals = dict(zip(smk.params.run_ids, smk.input.finals))
    status_files = dict(zip(smk.params.run_ids, smk.input.statuses))
    tables = []
    for line, start, end in lines:
        runs = (start, end)
        statuses = {run: read_status(status_files[run])["status"]
                    for run in runs}
        diverged = [run for run in runs if statuses[run] != "ok"]
        labels = {"line": line, "start_run": start, "end_run": end}
        if diverged:
            logging.warning("skipping line %s %s -> %s: %s diverged", line, start, end, diverged)
            tables.append(pd.DataFrame([{**labels, "status": f"skipped: {', '.join(diverged)} diverged"}]))
            continue
        model_a, model_b = (
            load_run_model(smk.params.model, smk.params.runs[run]["model"], data,
                           finals[run]) for run in runs)
        theta_a, theta_b = get_flat_params(model_a).to(device), get_flat_params(model_b).to(device)
        logging.info("line %s: %s -> %s at %d points", line, start, end, len(alphas))
        surface = surface_1d(model_a, theta_a, theta_b - theta_a, alphas, arrays,
                             bn_policy="recompute", progress_file=log,
                             precision=precision)
        tables.append(surface_1d_table(surface).assign(**labels, status="ok"))
    io.write_csv(pd.concat(tables, ignore_index=True), smk.output[0])
