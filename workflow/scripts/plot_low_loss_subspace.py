"""Low-loss complex through N solutions (Fort & Jastrzebski 2019; Benton et al. 2021): max and
mean loss over the complex and the linear simplex, the claim row, and the figure."""

import logging

from lossatlas import io
from lossatlas.claims import read_regime, write_claims
from lossatlas.plots import save_figure
from lossatlas.plots.structures import low_loss_subspace_table, plot_low_loss_subspace

smk = snakemake  # noqa: F821
with io.job_log(smk.log[0], exit_when_done=True):
    arrays, attrs = io.read_h5(smk.input.measurement)
    table = low_loss_subspace_table(arrays, attrs, smk.params.barrier_tolerance)
    io.write_csv(table, smk.output.table)
    write_claims(table, smk.output.claims, smk.params.runs,
                 regime=read_regime(smk.input.regime_solutions, smk.params.regime,
                                    smk.input.regime_structures))
    logging.info("\n%s", table.to_string())
    save_figure(plot_low_loss_subspace(arrays, attrs, table), smk.output.pdf, smk.output.png)
