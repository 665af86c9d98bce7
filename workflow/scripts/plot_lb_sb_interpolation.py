"""Render the LB/SB interpolation figure from its measurement table."""

import logging

import pandas as pd

from lossatlas import io
from lossatlas.plots import save_figure
from lossatlas.plots.lines import plot_lb_sb_interpolation

smk = snakemake  # noqa: F821
with io.job_log(smk.log[0]) as log:
    table = pd.read_csv(smk.input[0])
    save_figure(plot_lb_sb_interpolation(table), smk.output.pdf, smk.output.png)
    logging.info("wrote %s and %s", smk.output.pdf, smk.output.png)
