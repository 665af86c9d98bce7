"""Collect the MLI lines of the sweep into one table with its claim rows and render the MLI
figure."""

import logging

import pandas as pd

from lossatlas import io
from lossatlas.claims import read_regime, write_claims
from lossatlas.figure_claims import mli_claims
from lossatlas.plots import save_figure
from lossatlas.plots.landscape import plot_mli

smk = snakemake  # noqa: F821
with io.job_log(smk.log[0], exit_when_done=True) as log:
    curves = pd.concat([io.read_csv(path) for path in smk.input.curves], ignore_index=True)
    metrics = pd.concat([io.read_csv(path) for path in smk.input.metrics], ignore_index=True)
    io.write_csv(metrics, smk.output.table)
    claims = pd.DataFrame(mli_claims(metrics, smk.params.min_monotonic_fraction))
    logging.info("\n%s", claims.to_string())
    write_claims(claims, smk.output.claims,
                 regime=read_regime(smk.input.regime_solutions, smk.params.regime))
    ok = metrics[metrics["status"] == "ok"]
    logging.info("non-monotonic runs: %d of %d", (~ok["monotonic"].astype(bool)).sum(), len(ok))
    save_figure(plot_mli(curves, metrics), smk.output.pdf, smk.output.png)
