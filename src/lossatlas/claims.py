"""Claim rows: whether a paper's qualitative claim holds on this pipeline's own results.

One row format for every claim of every figure (``CLAIM_COLUMNS``): the work (paper), the figure,
the claim in words, the statistic, its measured value, the threshold or reference it is compared
with, the verdict ``holds`` / ``does not hold`` / ``inconclusive`` with the reason (a skipped or
diverged run, a censored measurement), the runs used and, once gathered, the config name.

Recipe for a figure that checks claims (every figure rule follows it):

1. The figure's table function appends rows made by ``claim_row`` to its tidy table (they are marked
   ``run == "claim"``); a skipped run gives ``holds=None`` and a reason, never an exception.
2. The figure's plot rule has the outputs ``claims=f"{CLAIMS_ROOT}/<figure>.csv"`` and
   ``claims_html=f"{CLAIMS_ROOT}/<figure>.html"``, and its script calls
   ``write_claims(table, snakemake.output.claims, runs)`` (``runs``: the run ids the figure used,
   for rows that do not name their own), which writes both.
3. The figure's caption ends with ``.. raw:: html`` on ``{{ snakemake.output.claims_html }}``
   (see any ``workflow/report/*.rst``), and the figure name is in ``FIGURES`` of the Snakefile, so
   the ``claims`` rule gathers its rows into ``results/NAME/claims.csv``, ``.md`` and ``.html``
   (``NAME`` the config's name, ``io.config_name``).

The tables for readers (Markdown, HTML) show one row per claim: the checks of one claim on
different runs are grouped in it, each with its value and verdict, the runs counted by family
(``taxonomy_*: 75 runs``; the full lists stay in the CSV), and a glossary of the codes and
symbols the rows use. Every text of a claim row is written in one notation (``reader_notation``).
"""

from __future__ import annotations

import dataclasses
import html
import math
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .io import atomic_path, read_csv, read_status
from .taxonomy import PHASE_MEANINGS, interpolation_crossing

VERDICTS = ("holds", "does not hold", "inconclusive")
CLAIM_COLUMNS = ("work", "figure", "claim", "statistic", "value", "threshold", "verdict", "reason",
                 "regime", "runs", "scale", "config")
VERDICT_COLOURS = {"holds": "#c8e6c9", "does not hold": "#ffcdd2", "inconclusive": "#e0e0e0"}
TEXT_COLUMNS = ("claim", "statistic", "threshold", "reason", "regime")
# ASCII spellings in claim texts and the one notation the tables use (regex, replacement).
READER_NOTATION = (
    (r">=", "≥"), (r"<=", "≤"), (r"->", "→"), (r"\blambda_max\b", "λ_max"),
    (r"\|theta\|", "‖θ‖"), (r"\|\|", "‖"), (r"\brho\b", "ρ"), (r"\bdelta\b", "δ"),
    (r"\bA\^T H A\b", "AᵀHA"), (r"(?<![\w)\]])-(?=\d)", "−"), (r" - ", " − "),
)
# Symbols and codes a claim row may use, with their meaning (shown under the tables when used).
GLOSSARY = {
    "LB": "the large-batch solution", "SB": "the small-batch solution",
    "C": "the number of classes", "nats": "unit of loss (natural-log cross-entropy)",
    "λ_max": "the largest eigenvalue of the Hessian H of the training loss",
    "Tr H": "the trace of the Hessian", "ρ": "Spearman rank correlation",
    "Spearman": "Spearman rank correlation, from −1 to 1",
    "mc": "Yang et al.'s mode connectivity ½(e₀ + e₁) − e(t*) along a trained curve "
          "(< 0: a barrier)",
    "Δ": "the largest rise of the loss along the interpolation path",
    "δ": "the loss allowance above the reference loss, in nats",
    "d_int": "the smallest subspace dimension d reaching the target accuracy",
    "D": "the number of parameters of the network",
    "θ₀": "the initialization", "θ_T": "the end of training",
    "CKA": "linear centred kernel alignment of two networks' outputs",
    **{f"phase {code}": meaning for code, meaning in PHASE_MEANINGS.items()},
}
RUN_LIST_LIMIT = 4


def reader_notation(text: str) -> str:
    """``text`` in the tables' one notation (``READER_NOTATION``: ≥ for >=, λ_max, ‖θ‖, ρ, δ, −)."""
    for pattern, replacement in READER_NOTATION:
        text = re.sub(pattern, replacement, text)
    return text


def value_text(value: float) -> str:
    """A claim value as the tables print it: an integer as an integer, else 4 significant digits;
    − for minus, – for a missing value."""
    if pd.isna(value):
        return "–"
    text = f"{int(value)}" if float(value).is_integer() else f"{value:.4g}"
    return text.replace("-", "−")


def runs_summary(runs: Sequence[str]) -> str:
    """Run ids for a reader: up to ``RUN_LIST_LIMIT`` listed, more counted by family (the part of
    the run group before its first ``_``, or the group's seeds): ``taxonomy_*: 75 runs``."""
    if len(runs) <= RUN_LIST_LIMIT:
        return ", ".join(runs)

    def family(run: str) -> str:
        group = run.rsplit("-s", 1)[0]
        return f"{group.split('_')[0]}_*" if "_" in group else f"{group}-s*"

    counts = Counter(family(run) for run in runs)
    singles = {family(run): run for run in runs}
    return ", ".join(f"{name}: {count} runs" if count > 1 else singles[name]
                     for name, count in counts.items())


def claim_row(work: str, figure: str, claim: str, statistic: str, value: float | None,
              threshold: str, holds: bool | None, reason: str = "",
              runs: Sequence[str] = ()) -> dict:
    """One claim row (``run == "claim"`` in a figure's table). ``holds=None`` (or a missing /
    non-finite ``value``) gives ``inconclusive`` and needs a ``reason``; ``holds=False`` without
    one gets the value against the threshold as its reason (``0.84 is not > 1``); ``runs`` are the
    run ids the statistic was computed from (empty: the figure's runs, filled in by
    ``write_claims``)."""
    finite = value is not None and math.isfinite(value)
    if holds is None or not finite:
        if not reason:
            raise ValueError(f"claim {claim!r}: an inconclusive verdict needs a reason")
        verdict = "inconclusive"
    else:
        verdict = "holds" if holds else "does not hold"
        if not holds and not reason:
            reason = f"{value_text(value)} is not {threshold}"
    return {"run": "claim", "work": work, "figure": figure, "claim": claim,
            "statistic": statistic, "value": float(value) if finite else float("nan"),
            "threshold": threshold, "verdict": verdict, "reason": reason, "regime": "",
            "runs": " ".join(runs)}


@dataclass(frozen=True)
class Regime:
    """What a figure's inputs reached, held against the preconditions of its claims (the
    papers study solutions trained to near-zero training error and structures trained to
    convergence).

    ``solutions``: run id → its ``status.json`` (``train_loss`` in nats, ``train_acc`` a fraction);
    ``max_train_error``: the fit precondition (a fraction), or ``None`` where the figure's claims
    are about training itself, not about trained minima (the fit is then reported, not required);
    ``structures``: structure name → its ``status.json``, whose ``convergence`` record
    (``converged``, ``epochs``, ``detail``) is required to say converged; ``note``: a regime
    statement of the figure's own (e.g. "at initialization"); ``unmet``: preconditions of the
    figure's own that failed, in words; ``structures_witness``: the claims assert that a low-loss
    structure exists, so a structure found before it converged is already a witness (training on
    only lowers its loss): an unconverged one leaves ``holds`` standing and makes only ``does not
    hold`` inconclusive."""

    solutions: Mapping[str, Mapping] = field(default_factory=dict)
    max_train_error: float | None = None
    structures: Mapping[str, Mapping] = field(default_factory=dict)
    note: str = ""
    unmet: tuple[str, ...] = ()
    structures_witness: bool = False


def read_regime(solutions: Iterable[str | os.PathLike] | str, settings: Mapping,
                structures: Iterable[str | os.PathLike] | str = ()) -> Regime:
    """A figure's ``Regime`` from the ``status.json`` files of its solutions and structures (each
    named by its folder: the run id or structure name) and its ``settings``: ``max_train_error``
    (``None``: the fit is reported, not required), ``note`` and ``structures_witness``."""
    def named(paths):
        paths = [paths] if isinstance(paths, (str, os.PathLike)) else paths
        return {Path(path).parent.name: read_status(path) for path in paths}

    return Regime(named(solutions), settings.get("max_train_error"), named(structures),
                  settings.get("note", ""),
                  structures_witness=settings.get("structures_witness", False))


def taxonomy_regime(regime: Regime, loads: Mapping[str, float], max_train_error: float,
                    cells: pd.DataFrame | None = None) -> Regime:
    """``regime`` of a load x temperature sweep with its own preconditions: the load axis crosses
    the interpolation threshold (``taxonomy.interpolation_crossing``; ``loads``: run → load) and,
    with ``cells`` (the per-cell table of ``measure_sweep_cells``), every cell's curves converged
    (``curve_converged``, ``curve_epochs``, ``curve_convergence``)."""
    text, unmet = interpolation_crossing(loads, regime.solutions, max_train_error)
    parts = [regime.note, text]
    if cells is not None and len(cells):
        converged = cells["curve_converged"].astype(bool)
        parts.append(f"curves: {int(converged.sum())} of {len(cells)} cells converged "
                     f"(≤ {int(cells['curve_epochs'].max())} epochs)")
        if not converged.all():
            worst = cells[~converged].iloc[0]
            unmet.append(f"curves of {int((~converged).sum())} cells not converged "
                         f"(e.g. {worst['curve_convergence']})")
    note = "; ".join(part for part in parts if part)
    return dataclasses.replace(regime, note=note, unmet=(*regime.unmet, *unmet))


def _percent(fraction: float) -> str:
    return f"{100 * fraction:.3g}%"


def _solutions_regime(solutions: Mapping[str, Mapping], max_train_error: float | None
                      ) -> tuple[str, list[str]]:
    """(what the solutions reached, the unmet fit precondition) of the runs ``solutions``."""
    trained = {run: status for run, status in solutions.items() if status.get("status") == "ok"}
    if not trained:
        return "", []
    errors = {run: 1.0 - float(status["train_acc"]) for run, status in trained.items()
              if status.get("train_acc") is not None}
    losses = [float(status["train_loss"]) for status in trained.values()]
    if len(errors) < len(trained):
        missing = sorted(set(trained) - set(errors))
        return (f"train loss ≤ {max(losses):.3g} nats; train error not recorded for "
                f"{', '.join(missing)}", [f"train error unknown for {', '.join(missing)}"]
                if max_train_error is not None else [])
    worst = max(errors, key=errors.get)
    many = f" (worst of {len(trained)} runs: {worst})" if len(trained) > 1 else ""
    text = (f"solutions: train error ≤ {_percent(errors[worst])}, train loss ≤ "
            f"{max(losses):.3g} nats{many}")
    if max_train_error is None:
        return text + " (not a precondition here)", []
    unfit = sorted(run for run, error in errors.items() if error > max_train_error)
    if not unfit:
        return text, []
    return text, [f"solutions not fit: train error of {runs_summary(unfit)} up to "
                  f"{_percent(errors[worst])} > {_percent(max_train_error)}"]


def _structures_regime(structures: Mapping[str, Mapping]) -> tuple[str, list[str]]:
    """(what the structures reached, the unconverged ones) from their ``convergence`` records."""
    if not structures:
        return "", []
    records = {name: status.get("convergence") for name, status in structures.items()
               if status.get("status") == "ok"}
    unknown = sorted(name for name, record in records.items() if not record)
    unconverged = {name: record for name, record in records.items()
                   if record and not record["converged"]}
    epochs = [int(record["epochs"]) for record in records.values() if record]
    converged = len(records) - len(unknown) - len(unconverged)
    text = (f"structures: {converged} of {len(structures)} converged"
            + (f" ({min(epochs)}–{max(epochs)} epochs)" if epochs else ""))
    unmet = [f"{name} not converged: {record['detail']} at epoch {record['epochs']}"
             for name, record in sorted(unconverged.items())]
    if unknown:
        unmet.append(f"convergence not recorded for {', '.join(unknown)}")
    return text, unmet


def apply_regime(row: dict, regime: Regime) -> dict:
    """``row`` with its ``regime`` text: what the solutions among the row's runs and the figure's
    structures reached. An unmet precondition turns a ``holds`` / ``does not hold`` into
    ``inconclusive``, its reason naming the precondition and what the value alone would say."""
    runs = set(str(row.get("runs", "")).split())
    solutions = {run: status for run, status in regime.solutions.items()
                 if not runs or run in runs}
    solution_text, unfit = _solutions_regime(solutions, regime.max_train_error)
    structure_text, unconverged = _structures_regime(regime.structures)
    texts = [text for text in (regime.note, solution_text, structure_text) if text]
    if regime.structures_witness and row["verdict"] == "holds":
        unconverged = []
    unmet = [*regime.unmet, *unfit, *unconverged]
    row = {**row, "regime": "; ".join(texts)}
    if unmet and row["verdict"] != "inconclusive":
        would = "hold" if row["verdict"] == "holds" else "not hold"
        row["reason"] = (f"{'; '.join(unmet)} (the value alone would {would}"
                         + (f": {row['reason']})" if row["reason"] else ")"))
        row["verdict"] = "inconclusive"
    elif unmet:
        row["reason"] = f"{row['reason']}; {'; '.join(unmet)}"
    return row


def claim_rows(table: pd.DataFrame, runs: Sequence[str] = ()) -> pd.DataFrame:
    """The claim rows of a figure's table in ``CLAIM_COLUMNS`` order, without ``scale`` and
    ``config`` (the gathering adds them); rows that name no runs get ``runs``."""
    if "run" not in table:
        raise ValueError(f"table has no column 'run'; has {list(table.columns)}")
    rows = table[table["run"] == "claim"].reindex(columns=list(CLAIM_COLUMNS[:-2]))
    if rows.empty:
        raise ValueError("table holds no claim row (run == 'claim')")
    unknown = set(rows["verdict"]) - set(VERDICTS)
    if unknown:
        raise ValueError(f"unknown verdicts {sorted(unknown)}; verdicts are {VERDICTS}")
    named = rows["runs"].fillna("").astype(str)
    rows["runs"] = named.where(named != "", " ".join(runs))
    for column in TEXT_COLUMNS:
        rows[column] = rows[column].fillna("").astype(str).map(reader_notation)
    return rows.reset_index(drop=True)


def write_claims(table: pd.DataFrame, path: str | os.PathLike, runs: Sequence[str] = (),
                 regime: Regime | None = None) -> None:
    """Write the claim rows of a figure's ``table`` (``claim_rows``), each held to ``regime``
    (``apply_regime``; ``None``: the figure states no regime), as CSV at ``path`` (``.csv``),
    values to 4 significant digits, and as the HTML list of its caption (``figure_claims_html``)
    at the same path with ``.html``."""
    path = Path(path)
    if path.suffix != ".csv":
        raise ValueError(f"claims path {path} must end in .csv (its HTML list goes beside it)")
    rows = claim_rows(table, runs)
    if regime is not None:
        rows = pd.DataFrame([apply_regime(row, regime) for row in rows.to_dict("records")],
                            columns=rows.columns)
        for column in TEXT_COLUMNS:
            rows[column] = rows[column].fillna("").astype(str).map(reader_notation)
    with atomic_path(path) as tmp:
        rows.to_csv(tmp, index=False, float_format="%.4g")
    write_text(figure_claims_html(rows), path.with_suffix(".html"))


def gather_claims(sources: Mapping[str, Iterable[str | os.PathLike]], config_name: str
                  ) -> pd.DataFrame:
    """Every figure's claim rows (files of ``write_claims``) in one table: ``sources`` maps the
    scale they were measured at (the model, e.g. ``mlp width 100, D = 15 210``) to their files;
    each row is stamped with its scale and ``config_name``."""
    tables = [read_csv(path, keep_default_na=False, na_values=[""]).assign(scale=scale)
              for scale, paths in sources.items() for path in paths]
    table = pd.concat(tables, ignore_index=True).reindex(columns=list(CLAIM_COLUMNS))
    for column in ("reason", "regime", "runs"):
        table[column] = ["" if pd.isna(text) else str(text) for text in table[column]]
    table["config"] = config_name
    return table


def _runs(cell: str) -> list[str]:
    return str(cell).split()


def _check_label(row: pd.Series, several_runs: bool, several_scales: bool) -> str:
    runs = runs_summary(_runs(row["runs"])) if several_runs else ""
    scale = str(row["scale"]) if several_scales else ""
    return f"{scale}: {runs}" if scale and runs else scale or runs


def _checks(group: pd.DataFrame) -> list[dict]:
    """The checks of one claim (rows that differ in their runs or scale), each with its label:
    the scale when the claim was checked at several, the runs when on several run sets."""
    scales = group["scale"].nunique() > 1 if "scale" in group else False
    several = len(group) > group["scale"].nunique() if "scale" in group else len(group) > 1
    return [{"label": _check_label(row, several, scales),
             "statistic": row["statistic"], "value": value_text(row["value"]),
             "threshold": row["threshold"], "verdict": row["verdict"], "reason": row["reason"],
             "regime": row["regime"] or "–"}
            for _, row in group.iterrows()]


def reader_claims(table: pd.DataFrame) -> list[dict]:
    """One entry per claim of a gathered (or one figure's) claims table, in the table's order:
    ``figure``, ``work``, ``claim``, its ``checks`` (``_checks``) and ``runs`` (every run it used,
    ``runs_summary``)."""
    claims = []
    for (figure, work, claim), group in table.groupby(["figure", "work", "claim"], sort=False):
        runs = list(dict.fromkeys(run for cell in group["runs"] for run in _runs(cell)))
        claims.append({"figure": figure, "work": work, "claim": claim, "checks": _checks(group),
                       "runs": runs_summary(runs)})
    return claims


def _shared(checks: list[dict], key: str) -> str | None:
    values = {check[key] for check in checks}
    return values.pop() if len(values) == 1 else None


def _labelled(check: dict, text: str) -> str:
    return f"{check['label']}: {text}" if check["label"] else text


def _verdict_text(check: dict) -> str:
    return f"{check['verdict']} ({check['reason']})" if check["reason"] else check["verdict"]


def summary_line(table: pd.DataFrame) -> str:
    """How many claims, checks and verdicts of each kind the table holds, in words."""
    counts = table["verdict"].value_counts()
    verdicts = ", ".join(f"{counts.get(verdict, 0)} {verdict}" for verdict in VERDICTS)
    claims = len(table.groupby(["figure", "work", "claim"]))
    return (f"{claims} claims checked {len(table)} times (once per run or run set): {verdicts}. "
            "Values to 4 significant digits; losses in nats, accuracies and errors as fractions "
            "in [0, 1]; the full list of runs of each row is in claims.csv.")


def glossary(table: pd.DataFrame) -> dict[str, str]:
    """The entries of ``GLOSSARY`` whose term a claim text of ``table`` uses (phase codes as
    ``phase IV-B`` or ``in IV-B``)."""
    text = " ".join(table[list(TEXT_COLUMNS)].astype(str).agg(" ".join, axis=1))
    used = {}
    for term, meaning in GLOSSARY.items():
        word = term.removeprefix("phase ")
        if re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text):
            used[term] = meaning
    return used


def claims_markdown(table: pd.DataFrame) -> str:
    """The gathered claims as a Markdown document: one line per claim (its checks on several run
    sets one under another), the verdict counts and the glossary of the codes used."""
    config = table["config"].iloc[0] if len(table) else ""
    lines = [f"# Claims checked (config `{config}`)", "", summary_line(table), "",
             "| # | figure | work | claim | statistic | value | threshold | verdict "
             "| regime of the inputs | runs |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for number, claim in enumerate(reader_claims(table), 1):
        checks = claim["checks"]

        def column(key, checks=checks):
            shared = _shared(checks, key)
            return shared if shared is not None else "<br>".join(
                _labelled(check, check[key]) for check in checks)

        verdicts = "<br>".join(_labelled(check, f"**{_verdict_text(check)}**")
                               for check in checks)
        cells = [str(number), claim["figure"], claim["work"], claim["claim"], column("statistic"),
                 "<br>".join(_labelled(check, check["value"]) for check in checks),
                 column("threshold"), verdicts, column("regime"), claim["runs"]]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    lines += ["", "## Codes and symbols", ""]
    lines += [f"- **{term}**: {meaning}" for term, meaning in glossary(table).items()]
    return "\n".join(lines) + "\n"


CELL = 'style="border:1px solid #bbb;padding:2px 6px;vertical-align:top"'


def _verdict_html(check: dict) -> str:
    label = f"{html.escape(check['label'])}: " if check["label"] else ""
    reason = f" ({html.escape(check['reason'])})" if check["reason"] else ""
    return (f'<div style="background:{VERDICT_COLOURS[check["verdict"]]};padding:1px 4px">'
            f"{label}<b>{html.escape(check['verdict'])}</b>{reason}</div>")


def _lines_html(checks: list[dict], key: str) -> str:
    shared = _shared(checks, key)
    if shared is not None:
        return html.escape(shared)
    return "<br>".join(html.escape(_labelled(check, check[key])) for check in checks)


def claims_table_html(table: pd.DataFrame) -> str:
    """The gathered claims as an HTML fragment (the opening of the Snakemake report): the verdict
    counts, a table of one row per claim whose verdicts are coloured (green holds, red does not
    hold, grey inconclusive, each with its reason), and the glossary of the codes used."""
    header = ("#", "figure", "work", "claim", "statistic", "value", "threshold", "verdict",
              "regime of the inputs", "runs")
    rows = ["<tr>" + "".join(f"<th {CELL}>{name}</th>" for name in header) + "</tr>"]
    for number, claim in enumerate(reader_claims(table), 1):
        checks = claim["checks"]
        values = "<br>".join(html.escape(_labelled(check, check["value"])) for check in checks)
        cells = [str(number), html.escape(claim["figure"]), html.escape(claim["work"]),
                 html.escape(claim["claim"]), _lines_html(checks, "statistic"), values,
                 _lines_html(checks, "threshold"), "".join(map(_verdict_html, checks)),
                 _lines_html(checks, "regime"), html.escape(claim["runs"])]
        rows.append("<tr>" + "".join(f"<td {CELL}>{cell}</td>" for cell in cells) + "</tr>")
    terms = "".join(f"<li><b>{html.escape(term)}</b>: {html.escape(meaning)}</li>"
                    for term, meaning in glossary(table).items())
    return (f'<div class="claims-table"><p>{html.escape(summary_line(table))}</p>\n'
            '<table style="border-collapse:collapse;font-size:85%">\n' + "\n".join(rows)
            + f"\n</table>\n<p>Codes and symbols:</p><ul>{terms}</ul></div>\n")


def claims_html(table: pd.DataFrame) -> str:
    """The gathered claims as a standalone HTML page (title, UTF-8) around ``claims_table_html``."""
    config = html.escape(str(table["config"].iloc[0])) if len(table) else ""
    title = f"Claims checked (config {config})"
    return ('<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{title}</title>\n</head>\n<body>\n<h1>{title}</h1>\n"
            + claims_table_html(table) + "</body>\n</html>\n")


def figure_claims_html(rows: pd.DataFrame) -> str:
    """One figure's claim rows (``claim_rows``) as an HTML list for the narrow caption panel of the
    report: per claim its work, and per check the statistic, value, threshold and the coloured
    verdict with its reason."""
    items = []
    for claim in reader_claims(rows):
        checks = "".join(
            f"<div>{html.escape(_labelled(check, check['statistic']))} = "
            f"{html.escape(check['value'])} (needs {html.escape(check['threshold'])}; inputs: "
            f"{html.escape(check['regime'])}){_verdict_html({**check, 'label': ''})}</div>"
            for check in claim["checks"])
        items.append(f"<li><b>{html.escape(claim['claim'])}</b> ({html.escape(claim['work'])}; "
                     f"runs: {html.escape(claim['runs'])}){checks}</li>")
    return '<ul class="figure-claims">' + "".join(items) + "</ul>\n"


def write_text(text: str, path: str | os.PathLike) -> None:
    """Atomically write a text file (the Markdown and HTML claims tables)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
