"""Taxonomy heat maps (Yang et al. 2021): per-cell table, claim row and figure from the sweep's
per-run curvature rows and per-cell connectivity / CKA / distance rows."""

import logging

import pandas as pd

from lossatlas import io
from lossatlas.claims import read_regime, taxonomy_regime, write_claims
from lossatlas.plots import save_figure
from lossatlas.plots.sweeps import plot_taxonomy_metrics, taxonomy_table

smk = snakemake  # noqa: F821
with io.job_log(smk.log[0], exit_when_done=True):
    curvature = pd.concat([io.read_csv(path) for path in smk.input.curvature], ignore_index=True)
    cells = pd.concat([io.read_csv(path) for path in smk.input.cells], ignore_index=True)
    table = taxonomy_table(curvature, cells, *smk.params.axes)
    io.write_csv(table, smk.output.table)
    write_claims(table, smk.output.claims, smk.params.runs,
                 regime=taxonomy_regime(read_regime(smk.input.regime_solutions, smk.params.regime),
                                        smk.params.loads, smk.params.max_train_error))
    logging.info("\n%s", table[table["run"].isin(["cell", "claim"])].to_string())
    save_figure(plot_taxonomy_metrics(table), smk.output.pdf, smk.output.png)
