"""Ensembles (Fort, Hu & Lakshminarayanan 2019): accuracy against ensemble size and disagreement
per kind of members, the claim row, and the figure."""

import logging

from lossatlas import io
from lossatlas.plots import save_figure
from lossatlas.plots.structures import ensembles_table, plot_ensembles

smk = snakemake  # noqa: F821
with io.job_log(smk.log[0]):
    arrays, attrs = io.read_h5(smk.input[0])
    table = ensembles_table(arrays, attrs)
    io.write_csv(table, smk.output.table)
    logging.info("\n%s", table.to_string())
    save_figure(plot_ensembles(table, attrs), smk.output.pdf, smk.output.png)
