"""Dataset sanity claim rows: the configured model's run and the reference model's run against the
dataset's published test accuracies (figure_claims.PUBLISHED_SOURCE)."""

import logging

import pandas as pd

from lossatlas import io
from lossatlas.claims import Regime, write_claims
from lossatlas.figure_claims import dataset_claims

smk = snakemake  # noqa: F821
with io.job_log(smk.log[0], exit_when_done=True):
    results = {smk.params.model: (smk.params.run, io.read_status(smk.input.run_status))}
    if smk.params.reference_run:
        results[smk.params.reference_model] = (smk.params.reference_run,
                                               io.read_status(smk.input.reference_status[0]))
    table = pd.DataFrame(dataset_claims(smk.params.dataset, results, smk.params.tolerance))
    logging.info("\n%s", table.to_string())
    statuses = {run: status for run, status in results.values()}
    write_claims(table, smk.output[0],
                 regime=Regime(statuses, note="test accuracy of trained runs"))
