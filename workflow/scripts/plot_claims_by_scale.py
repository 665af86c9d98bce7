"""The claims_by_scale figure from the gathered claims table."""

import logging

from lossatlas import io
from lossatlas.plots import save_figure
from lossatlas.plots.scales import claims_by_scale_table, plot_claims_by_scale

smk = snakemake  # noqa: F821
with io.job_log(smk.log[0], exit_when_done=True):
    table = claims_by_scale_table(io.read_csv(smk.input.claims), smk.params.scale)
    io.write_csv(table, smk.output.table)
    logging.info("\n%s", table[["figure", "claim", "check", "scale", "value", "verdict"]])
    save_figure(plot_claims_by_scale(table), smk.output.pdf, smk.output.png)
