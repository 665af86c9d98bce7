"""Render the LB/SB interpolation figure from its measurement table, with its claim rows."""

import logging

import pandas as pd

from lossatlas import io
from lossatlas.claims import read_regime, write_claims
from lossatlas.figure_claims import lb_sb_claims
from lossatlas.plots import save_figure
from lossatlas.plots.lines import plot_lb_sb_interpolation

smk = snakemake  # noqa: F821
with io.job_log(smk.log[0], exit_when_done=True) as log:
    table = io.read_csv(smk.input.table)
    claims = pd.DataFrame(lb_sb_claims(table, smk.params.rise_alpha))
    logging.info("\n%s", claims.to_string())
    write_claims(claims, smk.output.claims,
                 regime=read_regime(smk.input.regime_solutions, smk.params.regime))
    save_figure(plot_lb_sb_interpolation(table), smk.output.pdf, smk.output.png)
    logging.info("wrote %s and %s", smk.output.pdf, smk.output.png)
