"""Random-subspace training: per-run table, d_int per init scale, claim rows, and the figure."""

import logging

from lossatlas import io
from lossatlas.claims import read_regime, write_claims
from lossatlas.plots import save_figure
from lossatlas.plots.subspace import plot_subspace_training, subspace_training_table

smk = snakemake  # noqa: F821
with io.job_log(smk.log[0], exit_when_done=True):
    finals = {}
    for run, metrics, status in zip(smk.params.runs, smk.input.metrics, smk.input.status):
        last = io.read_csv(metrics).iloc[-1].to_dict()
        finals[run] = {**last, "status": io.read_json(status)["status"]}
    table = subspace_training_table(finals, smk.params.settings, smk.params.dim_full,
                                    smk.params.fraction)
    io.write_csv(table, smk.output.table)
    baselines = [status for run, status in zip(smk.params.runs, smk.input.status)
                 if smk.params.settings[run]["parameterization"]["kind"] == "full"]
    write_claims(table, smk.output.claims, smk.params.runs,
                 regime=read_regime(baselines, smk.params.regime))
    logging.info("\n%s", table.to_string())
    save_figure(plot_subspace_training(table, smk.params.fraction), smk.output.pdf,
                smk.output.png)
