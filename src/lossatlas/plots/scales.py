"""The ``claims_by_scale`` figure: each claim that does not hold at the config's own scale, its
statistic at every scale it was measured at (the config's model and the ``second_scale`` one) with
its threshold, so a reader sees whether the gap closes toward the papers' scale."""

from __future__ import annotations

import math
import re

import matplotlib.pyplot as plt
from matplotlib.ticker import NullLocator
import numpy as np
import pandas as pd

from ..claims import VERDICT_COLOURS, runs_summary
from . import add_title, use_style, wrap_title

# A threshold's numeric bounds: "> 1", "≥ 0.5", "< 0.1 for every curve kind", "= 1", "within ±1",
# "within 1 ± 0.2"; any other text (e.g. "strictly inside (0.1, 10)") has none.
_NUMBER = r"[−-]?\d+(?:\.\d+)?(?:e[−-]?\d+)?"
_COMPARISON = re.compile(rf"^\s*(>|≥|<|≤|=)\s*({_NUMBER})")
_BAND = re.compile(rf"^\s*within\s+(?:({_NUMBER})\s*)?±\s*({_NUMBER})")


def _number(text: str) -> float:
    return float(text.replace("−", "-"))


def threshold_lines(threshold: str) -> list[float]:
    """The values to draw for a claim's ``threshold`` text: one for a comparison, the two ends of
    a ``within c ± w`` band (c = 0 when absent), none for any other text."""
    if match := _COMPARISON.match(threshold):
        return [_number(match.group(2))]
    if match := _BAND.match(threshold):
        centre = _number(match.group(1)) if match.group(1) else 0.0
        width = _number(match.group(2))
        return [centre - width, centre + width]
    return []


def parameter_count(scale: str) -> float:
    """D of a scale label (``mlp width=100 depth=2 norm=none, D = 15210``); NaN when absent."""
    match = re.search(r"D = (\d+)", scale)
    return float(match.group(1)) if match else math.nan


def claims_by_scale_table(claims: pd.DataFrame, own_scale: str) -> pd.DataFrame:
    """The checks of ``claims`` (a gathered claims table) whose claim does not hold at
    ``own_scale`` (any check ``does not hold`` or ``inconclusive`` there), at every scale: one row
    per (claim, check runs, scale) with its value, threshold, verdict and D; ``measured_at`` counts
    the scales the claim has. Ordered by figure, claim and D."""
    keys = ["figure", "work", "claim"]
    own = claims[claims["scale"] == own_scale]
    failing = own[own["verdict"] != "holds"][keys].drop_duplicates()
    rows = claims.merge(failing, on=keys)
    rows = rows.assign(parameters=rows["scale"].map(parameter_count),
                       check=rows["runs"].fillna("").map(lambda runs: runs_summary(runs.split())))
    rows["measured_at"] = rows.groupby(keys)["scale"].transform("nunique")
    return rows.sort_values([*keys, "parameters"], kind="stable").reset_index(drop=True)


def plot_claims_by_scale(table: pd.DataFrame) -> plt.Figure:
    """One panel per claim of ``claims_by_scale_table``: its statistic against the parameter count
    D of each scale (log axis), one line per check (runs), markers coloured by verdict (green
    holds, red does not hold, grey inconclusive), the threshold dashed; a claim measured at one
    scale only says so in its panel."""
    use_style()
    claims = list(table.groupby(["figure", "claim"], sort=False))
    columns = min(3, max(1, len(claims)))
    rows = max(1, math.ceil(len(claims) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.2 * rows), squeeze=False)
    for ax in axes.flat[len(claims):]:
        ax.set_axis_off()
    if not claims:
        axes.flat[0].text(0.5, 0.5, "every claim holds at the config's scale", ha="center",
                          va="center")
    for ax, ((figure_name, claim), group) in zip(axes.flat, claims):
        for check, line in group.groupby("check", sort=False):
            finite = line[np.isfinite(line["value"])]
            ax.plot(finite["parameters"], finite["value"], "-", color="0.5", lw=0.8)
            ax.scatter(finite["parameters"], finite["value"], s=30, zorder=3,
                       c=[VERDICT_COLOURS[v] for v in finite["verdict"]], edgecolors="black",
                       linewidths=0.6, label=check or None)
            if check and len(group["check"].unique()) > 1 and len(finite):
                ax.annotate(check, (finite["parameters"].iloc[-1], finite["value"].iloc[-1]),
                            textcoords="offset points", xytext=(4, 0), fontsize=6)
        for value in threshold_lines(group["threshold"].iloc[0]):
            ax.axhline(value, ls="--", color="black", lw=0.8)
        if np.isfinite(group["value"]).any():
            counts = sorted(set(group["parameters"].dropna()))
            ax.set_xscale("log")
            ax.set_xticks(counts, [f"{count:,.0f}".replace(",", " ") for count in counts])
            ax.xaxis.set_minor_locator(NullLocator())
            ax.set_xlim(min(counts) / 1.6, max(counts) * 1.6)
        else:
            ax.text(0.5, 0.5, wrap_title(f"no value: {group['reason'].iloc[0]}", 3.6),
                    ha="center", va="center", transform=ax.transAxes, fontsize=7,
                    bbox={"facecolor": "white", "edgecolor": "none"})
            ax.set_xticks([])
        ax.set_xlabel("parameters D")
        ax.set_ylabel(wrap_title(group["statistic"].iloc[0], 3.8).split("\n")[0], fontsize=6)
        note = "" if group["measured_at"].iloc[0] > 1 else "; measured at one scale only"
        ax.set_title(wrap_title(f"{figure_name}: {claim}", 4.0) + "\n"
                     + wrap_title(f"threshold {group['threshold'].iloc[0]}{note}", 4.0),
                     fontsize=7)
    add_title(figure, "Claims that do not hold at the config's scale, at every scale measured "
                      "(green holds, red does not hold, grey inconclusive; dashed: threshold)")
    return figure
