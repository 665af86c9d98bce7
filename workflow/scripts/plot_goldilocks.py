"""Goldilocks zone: tidy table with the subspace-training overlay and the claim rows, and the
figure."""

import logging

from lossatlas import io
from lossatlas.claims import read_regime, write_claims
from lossatlas.plots import save_figure
from lossatlas.plots.goldilocks import goldilocks_table, plot_goldilocks

smk = snakemake  # noqa: F821
with io.job_log(smk.log[0], exit_when_done=True):
    arrays, attrs = io.read_h5(smk.input.measurement)
    table = goldilocks_table(arrays, attrs, io.read_csv(smk.input.subspace), smk.params.overlay_dim)
    io.write_csv(table, smk.output.table)
    write_claims(table, smk.output.claims,
                 regime=read_regime([], smk.params.regime))
    logging.info("\n%s", table.to_string())
    save_figure(plot_goldilocks(table, attrs["init_radius"], attrs["xavier_radius"]),
                smk.output.pdf, smk.output.png)
