"""λ_max, Tr H and gradient overlap along training: tidy table and figure."""

import logging

from lossatlas import io
from lossatlas.plots import save_figure
from lossatlas.plots.curvature import (
    curvature_along_training_table,
    plot_curvature_along_training,
)

smk = snakemake  # noqa: F821
with io.job_log(smk.log[0]):
    table = curvature_along_training_table([io.read_h5(path) for path in smk.input],
                                           smk.params.overlap_k)
    io.write_csv(table, smk.output.table)
    logging.info("\n%s", table.to_string())
    save_figure(plot_curvature_along_training(table), smk.output.pdf, smk.output.png)
