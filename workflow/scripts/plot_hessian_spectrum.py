"""Hessian spectra at the solutions: tidy table with the λ_max and outlier claim rows, and the
figure."""

import logging

from lossatlas import io
from lossatlas.claims import read_regime, write_claims
from lossatlas.plots import save_figure
from lossatlas.plots.curvature import hessian_spectrum_table, plot_hessian_spectrum

smk = snakemake  # noqa: F821
with io.job_log(smk.log[0], exit_when_done=True):
    measurements = {}
    for path in smk.input.measurements:
        arrays, attrs = io.read_h5(path)
        measurements[attrs["run"]] = (arrays, attrs)
    table = hessian_spectrum_table(measurements, smk.params.outlier_tolerance)
    io.write_csv(table, smk.output.table)
    write_claims(table, smk.output.claims,
                 regime=read_regime(smk.input.regime_solutions, smk.params.regime))
    logging.info("\n%s", table.to_string())
    save_figure(plot_hessian_spectrum(measurements, table), smk.output.pdf, smk.output.png)
