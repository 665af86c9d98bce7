"""Loss and accuracy on the line through the LB and SB solutions (and LB -> continuation)."""

import logging

import numpy as np
import pandas as pd
import torch

from lossatlas import io
from lossatlas.data import load_dataset
from lossatlas.measure import lb_sb_line_table
from lossatlas.runs import read_status
from lossatlas.train import resolve_device

smk = snakemake  # noqa: F821
torch.set_num_threads(smk.threads)
with open(smk.log[0], "w") as log:
    logging.basicConfig(stream=log, level=logging.INFO, force=True)
    device = resolve_device(smk.params.device)
    data = load_dataset(smk.input.data).to(device)
    alphas = np.linspace(smk.params.alpha_min, smk.params.alpha_max, smk.params.points)
    pairs = [("lb_to_sb", lb, sb) for lb, sb in zip(smk.params.large_batch, smk.params.small_batch)]
    pairs += [("lb_to_continuation", lb, c)
              for lb, c in zip(smk.params.large_batch, smk.params.continuation)]
    tables = []
    for line, start, end in pairs:
        statuses = {run: read_status(f"{smk.params.run_root}/{run}/status.json")["status"]
                    for run in (start, end)}
        diverged = [run for run, status in statuses.items() if status != "ok"]
        if diverged:
            logging.warning("skipping line %s %s -> %s: run(s) %s diverged", line, start, end, diverged)
            tables.append(pd.DataFrame([{"line": line, "start_run": start, "end_run": end,
                                         "status": f"skipped: {', '.join(diverged)} diverged"}]))
            continue
        logging.info("line %s: %s -> %s at %d points", line, start, end, len(alphas))
        tables.append(lb_sb_line_table(
            smk.params.model, smk.params.runs[start]["model"], data,
            f"{smk.params.run_root}/{start}/final.pt", f"{smk.params.run_root}/{end}/final.pt",
            alphas, line=line, start_run=start, end_run=end, progress_file=log))
    io.write_csv(pd.concat(tables, ignore_index=True), smk.output[0])
