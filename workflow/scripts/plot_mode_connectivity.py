"""Mode connectivity (Garipov et al. 2018; Yang et al. 2021): barrier and mc per pair and path,
the claim row, and the figure."""

import logging

from lossatlas import io
from lossatlas.claims import read_regime, write_claims
from lossatlas.plots import save_figure
from lossatlas.plots.structures import mode_connectivity_table, plot_mode_connectivity

smk = snakemake  # noqa: F821
with io.job_log(smk.log[0], exit_when_done=True):
    arrays, attrs = io.read_h5(smk.input.measurement)
    table = mode_connectivity_table(arrays, attrs, smk.params.barrier_ratio)
    io.write_csv(table, smk.output.table)
    write_claims(table, smk.output.claims, smk.params.runs,
                 regime=read_regime(smk.input.regime_solutions, smk.params.regime,
                                    smk.input.regime_structures))
    logging.info("\n%s", table.to_string())
    save_figure(plot_mode_connectivity(arrays, attrs, table), smk.output.pdf, smk.output.png)
