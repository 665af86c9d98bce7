"""2D cuts through the origin (Fort & Jastrzebski 2019): low-loss width against radius along each
solution's ray with the claim row, and the figure."""

import logging

from lossatlas import io
from lossatlas.claims import read_regime, write_claims
from lossatlas.plots import save_figure
from lossatlas.plots.wedge import plot_wedge_cuts, wedge_cuts_table

smk = snakemake  # noqa: F821
with io.job_log(smk.log[0], exit_when_done=True):
    planes = {"solutions": io.read_h5(smk.input.solutions), "init": io.read_h5(smk.input.init)}
    table = wedge_cuts_table(planes)
    io.write_csv(table, smk.output.table)
    write_claims(table, smk.output.claims, smk.params.runs,
                 regime=read_regime(smk.input.regime_solutions, smk.params.regime))
    logging.info("\n%s", table.to_string())
    save_figure(plot_wedge_cuts(planes, table), smk.output.pdf, smk.output.png)
