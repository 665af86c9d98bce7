"""Long and short directions (Fort & Jastrzebski 2019): crossing distances and barrier heights with
the claim rows, and the figure."""

import logging

from lossatlas import io
from lossatlas.claims import read_regime, write_claims
from lossatlas.plots import save_figure
from lossatlas.plots.wedge import long_short_table, plot_long_short_directions

smk = snakemake  # noqa: F821
with io.job_log(smk.log[0], exit_when_done=True):
    arrays, attrs = io.read_h5(smk.input.measurement)
    table = long_short_table(arrays, attrs)
    io.write_csv(table, smk.output.table)
    write_claims(table, smk.output.claims, smk.params.runs,
                 regime=read_regime(smk.input.regime_solutions, smk.params.regime))
    logging.info("\n%s", table.to_string())
    save_figure(plot_long_short_directions(arrays, attrs, table), smk.output.pdf, smk.output.png)
