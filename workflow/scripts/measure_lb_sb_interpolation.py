"""Loss and accuracy on the line through the LB and SB solutions (and LB -> continuation)."""

import logging

import numpy as np
import pandas as pd
import torch

from lossatlas import io
from lossatlas.landscape import surface_1d, surface_1d_table
from lossatlas.params import get_flat_params
from lossatlas.runs import load_run_model, load_solution, skip_reason

smk = snakemake  # noqa: F821
torch.set_num_threads(smk.threads)
alphas = np.linspace(smk.params.alpha_min, smk.params.alpha_max, smk.params.points)
finals = dict(zip(smk.params.run_ids, smk.input.finals))
status_files = dict(zip(smk.params.run_ids, smk.input.statuses))
lines = [("lb_to_sb", lb, sb) for lb, sb in zip(smk.params.large_batch, smk.params.small_batch)]
lines += [("lb_to_continuation", lb, c)
          for lb, c in zip(smk.params.large_batch, smk.params.continuation)]
with io.job_log(smk.log[0], exit_when_done=True) as log:
    tables = []
    for line, start, end in lines:
        labels = {"line": line, "start_run": start, "end_run": end}
        reasons = [r for r in (skip_reason(status_files[run], run) for run in (start, end)) if r]
        if reasons:
            logging.warning("line %s: %s", line, "; ".join(reasons))
            tables.append(pd.DataFrame([{**labels, "status": "; ".join(reasons)}]))
            continue
        run = load_solution(smk.input.data, smk.params.model, smk.params.runs[start],
                            finals[start], device=smk.params.device,
                            precision=smk.params.precision)
        end_model = load_run_model(smk.params.model, smk.params.runs[end]["model"], run.data,
                                   finals[end])
        direction = get_flat_params(end_model).to(run.device) - run.theta
        logging.info("line %s: %s -> %s at %d points", line, start, end, len(alphas))
        surface = surface_1d(run.model, run.theta, direction, alphas, run.train_test,
                             bn_policy="recompute", precision=run.precision, progress_file=log)
        tables.append(surface_1d_table(surface).assign(**labels, status="ok",
                                                       n_test=len(run.data.y_test)))
    io.write_csv(pd.concat(tables, ignore_index=True), smk.output[0])
