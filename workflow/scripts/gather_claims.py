"""Gather every figure's claim rows into the config's claims.csv, claims.md, claims.html and the
report's claims_table.html (results/NAME/, NAME the config's name)."""

import logging

from lossatlas import io
from lossatlas.claims import (
    claims_html,
    claims_markdown,
    claims_table_html,
    gather_claims,
    write_text,
)

smk = snakemake  # noqa: F821
with io.job_log(smk.log[0], exit_when_done=True):
    sources = {smk.params.scale: smk.input.own}
    if smk.params.second_scale:
        sources[smk.params.second_scale] = smk.input.second_scale
    table = gather_claims(sources, smk.params.config_name)
    io.write_csv(table, smk.output.csv)
    write_text(claims_markdown(table), smk.output.markdown)
    write_text(claims_html(table), smk.output.html)
    write_text(claims_table_html(table), smk.output.report_table)
    logging.info("%d claims: %s", len(table), table["verdict"].value_counts().to_dict())
