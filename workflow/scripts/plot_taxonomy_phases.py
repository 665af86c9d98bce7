"""Taxonomy phase map (Yang et al. 2021): every cell's phase from the configured thresholds, the
claim rows and the figure."""

import logging

import pandas as pd

from lossatlas import io
from lossatlas.claims import read_regime, taxonomy_regime, write_claims
from lossatlas.plots import save_figure
from lossatlas.plots.sweeps import plot_taxonomy_phases, taxonomy_phase_table
from lossatlas.taxonomy import PhaseThresholds

smk = snakemake  # noqa: F821
with io.job_log(smk.log[0], exit_when_done=True):
    thresholds = PhaseThresholds(**smk.params.thresholds)
    cells = pd.concat([io.read_csv(path) for path in smk.input.cells], ignore_index=True)
    table = taxonomy_phase_table(io.read_csv(smk.input.metrics), thresholds)
    io.write_csv(table, smk.output.table)
    write_claims(table, smk.output.claims, smk.params.runs,
                 regime=taxonomy_regime(read_regime(smk.input.regime_solutions, smk.params.regime),
                                        smk.params.loads, smk.params.max_train_error, cells))
    logging.info("\n%s", table.to_string())
    save_figure(plot_taxonomy_phases(table, thresholds), smk.output.pdf, smk.output.png)
