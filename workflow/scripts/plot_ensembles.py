"""Ensembles (Fort, Hu & Lakshminarayanan 2019): accuracy against ensemble size and disagreement
per kind of members, the claim row, and the figure."""

import logging

from lossatlas import io
from lossatlas.claims import read_regime, write_claims
from lossatlas.plots import save_figure
from lossatlas.plots.structures import ensembles_table, plot_ensembles

smk = snakemake  # noqa: F821
with io.job_log(smk.log[0], exit_when_done=True):
    arrays, attrs = io.read_h5(smk.input.measurement)
    table = ensembles_table(arrays, attrs)
    io.write_csv(table, smk.output.table)
    write_claims(table, smk.output.claims, smk.params.runs,
                 regime=read_regime(smk.input.regime_solutions, smk.params.regime,
                                    smk.input.regime_structures))
    logging.info("\n%s", table.to_string())
    save_figure(plot_ensembles(table, attrs), smk.output.pdf, smk.output.png)
