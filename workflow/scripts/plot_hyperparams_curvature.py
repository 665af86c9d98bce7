"""Hyper-parameters vs curvature (Fort & Jastrzebski 2019): tidy table, claim rows and figure from
the curvature rows of the one-knob sweeps."""

import logging

import pandas as pd

from lossatlas import io
from lossatlas.claims import read_regime, write_claims
from lossatlas.plots import save_figure
from lossatlas.plots.sweeps import hyperparams_table, plot_hyperparams_curvature

smk = snakemake  # noqa: F821
with io.job_log(smk.log[0], exit_when_done=True):
    curvature = pd.concat([io.read_csv(path) for path in smk.input.curvature], ignore_index=True)
    table = hyperparams_table(curvature, smk.params.sweeps)
    io.write_csv(table, smk.output.table)
    write_claims(table, smk.output.claims, list(dict.fromkeys(curvature["run"])),
                 regime=read_regime(smk.input.regime_solutions, smk.params.regime))
    logging.info("\n%s", table[table["run"].isin(["final_mean", "claim"])].to_string())
    save_figure(plot_hyperparams_curvature(table), smk.output.pdf, smk.output.png)
