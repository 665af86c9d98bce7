"""λ_max, Tr H and gradient overlap along training: tidy table with the claim rows, and figure."""

import logging

from lossatlas import io
from lossatlas.claims import read_regime, write_claims
from lossatlas.plots import save_figure
from lossatlas.plots.curvature import (
    curvature_along_training_table,
    plot_curvature_along_training,
)

smk = snakemake  # noqa: F821
with io.job_log(smk.log[0], exit_when_done=True):
    table = curvature_along_training_table(
        [io.read_h5(path) for path in smk.input.measurements], smk.params.overlap_k,
        smk.params.stability_window, smk.params.stability_tolerance, smk.params.min_overlap,
        smk.params.min_peak_drop)
    io.write_csv(table, smk.output.table)
    write_claims(table, smk.output.claims,
                 regime=read_regime(smk.input.regime_solutions, smk.params.regime))
    logging.info("\n%s", table.to_string())
    save_figure(plot_curvature_along_training(table), smk.output.pdf, smk.output.png)
