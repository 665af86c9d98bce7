"""Claim rows: whether a paper's qualitative claim holds on this pipeline's own results.

One row format for every claim of every figure (``CLAIM_COLUMNS``): the work (paper), the figure,
the claim in words, the statistic, its measured value, the threshold or reference it is compared
with, the verdict ``holds`` / ``does not hold`` / ``inconclusive`` with the reason (a skipped or
diverged run, a censored measurement), the runs used and, once gathered, the config name.

Recipe for a figure that checks claims (every figure rule follows it):

1. The figure's table function appends rows made by ``claim_row`` to its tidy table (they are marked
   ``run == "claim"``); a skipped run gives ``holds=None`` and a reason, never an exception.
2. The figure's plot rule has the output ``claims=f"{CLAIMS_ROOT}/<figure>.csv"`` and its script
   calls ``write_claims(table, snakemake.output.claims, runs)`` (``runs``: the run ids the figure
   used, for rows that do not name their own).
3. The figure's caption ends with ``.. csv-table::`` on ``{{ snakemake.output.claims }}`` (see any
   ``workflow/report/*.rst``), and the figure name is in ``FIGURES`` of the Snakefile, so the
   ``claims`` rule gathers its rows into ``results/claims.csv``, ``.md`` and ``.html``.
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Iterable, Sequence

import pandas as pd

from .io import atomic_path, read_csv

VERDICTS = ("holds", "does not hold", "inconclusive")
CLAIM_COLUMNS = ("work", "figure", "claim", "statistic", "value", "threshold", "verdict", "reason",
                 "runs", "config")
VERDICT_COLOURS = {"holds": "#c8e6c9", "does not hold": "#ffcdd2", "inconclusive": "#e0e0e0"}


def claim_row(work: str, figure: str, claim: str, statistic: str, value: float | None,
              threshold: str, holds: bool | None, reason: str = "",
              runs: Sequence[str] = ()) -> dict:
    """One claim row (``run == "claim"`` in a figure's table). ``holds=None`` (or a missing /
    non-finite ``value``) gives ``inconclusive`` and needs a ``reason``; ``runs`` are the run ids
    the statistic was computed from (empty: the figure's runs, filled in by ``write_claims``)."""
    finite = value is not None and math.isfinite(value)
    if holds is None or not finite:
        if not reason:
            raise ValueError(f"claim {claim!r}: an inconclusive verdict needs a reason")
        verdict = "inconclusive"
    else:
        verdict = "holds" if holds else "does not hold"
    return {"run": "claim", "work": work, "figure": figure, "claim": claim,
            "statistic": statistic, "value": float(value) if finite else float("nan"),
            "threshold": threshold, "verdict": verdict, "reason": reason, "runs": " ".join(runs)}


def claim_rows(table: pd.DataFrame, runs: Sequence[str] = ()) -> pd.DataFrame:
    """The claim rows of a figure's table in ``CLAIM_COLUMNS`` order, without ``config`` (the
    gathering adds it); rows that name no runs get ``runs``."""
    if "run" not in table:
        raise ValueError(f"table has no column 'run'; has {list(table.columns)}")
    rows = table[table["run"] == "claim"].reindex(columns=list(CLAIM_COLUMNS[:-1]))
    if rows.empty:
        raise ValueError("table holds no claim row (run == 'claim')")
    unknown = set(rows["verdict"]) - set(VERDICTS)
    if unknown:
        raise ValueError(f"unknown verdicts {sorted(unknown)}; verdicts are {VERDICTS}")
    named = rows["runs"].fillna("").astype(str)
    rows["runs"] = named.where(named != "", " ".join(runs))
    rows["reason"] = rows["reason"].fillna("")
    return rows.reset_index(drop=True)


def write_claims(table: pd.DataFrame, path: str | os.PathLike, runs: Sequence[str] = ()) -> None:
    """Write the claim rows of a figure's ``table`` (``claim_rows``) as CSV beside its table, values
    to 4 significant digits (the precision the captions show)."""
    with atomic_path(path) as tmp:
        claim_rows(table, runs).to_csv(tmp, index=False, float_format="%.4g")


def gather_claims(paths: Iterable[str | os.PathLike], config_name: str) -> pd.DataFrame:
    """Every figure's claim rows (files of ``write_claims``) in one table, each row stamped with
    ``config_name``."""
    tables = [read_csv(path, keep_default_na=False, na_values=[""]) for path in paths]
    table = pd.concat(tables, ignore_index=True).reindex(columns=list(CLAIM_COLUMNS))
    table["reason"] = table["reason"].fillna("")
    table["runs"] = table["runs"].fillna("")
    table["config"] = config_name
    return table


def _value_text(value: float) -> str:
    return "–" if pd.isna(value) else f"{value:.4g}"


def _verdict_text(row: pd.Series) -> str:
    return f"{row['verdict']} ({row['reason']})" if row["reason"] else row["verdict"]


def claims_markdown(table: pd.DataFrame) -> str:
    """The gathered claims as a Markdown table, one line per claim, with a count of verdicts."""
    counts = table["verdict"].value_counts()
    summary = ", ".join(f"{counts.get(verdict, 0)} {verdict}" for verdict in VERDICTS)
    config = table["config"].iloc[0] if len(table) else ""
    lines = [f"# Claims checked (config `{config}`)", "", f"{len(table)} claims: {summary}.", "",
             "| figure | work | claim | statistic | value | threshold | verdict | runs |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for _, row in table.iterrows():
        cells = [row["figure"], row["work"], row["claim"], row["statistic"],
                 _value_text(row["value"]), row["threshold"], f"**{_verdict_text(row)}**",
                 row["runs"]]
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def claims_html(table: pd.DataFrame) -> str:
    """The gathered claims as an HTML table whose verdict cells are coloured (green holds, red does
    not hold, grey inconclusive), for the opening of the Snakemake report."""
    header = ("figure", "work", "claim", "statistic", "value", "threshold", "verdict", "runs")
    cell = 'style="border:1px solid #bbb;padding:2px 6px;vertical-align:top"'
    rows = ["<tr>" + "".join(f"<th {cell}>{name}</th>" for name in header) + "</tr>"]
    for _, row in table.iterrows():
        values = [row["figure"], row["work"], row["claim"], row["statistic"],
                  _value_text(row["value"]), row["threshold"]]
        colour = VERDICT_COLOURS[row["verdict"]]
        cells = [f"<td {cell}>{html.escape(str(v))}</td>" for v in values]
        cells.append(f'<td {cell[:-1]};background:{colour}"><b>{html.escape(_verdict_text(row))}'
                     "</b></td>")
        cells.append(f"<td {cell}>{html.escape(str(row['runs']))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return ('<table style="border-collapse:collapse;font-size:85%">\n' + "\n".join(rows)
            + "\n</table>\n")


def write_text(text: str, path: str | os.PathLike) -> None:
    """Atomically write a text file (the Markdown and HTML claims tables)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
