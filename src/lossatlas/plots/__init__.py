"""Figure functions: tidy data in, matplotlib figure out; ``save_figure`` writes PDF and PNG."""

from __future__ import annotations

import json
import os

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from ..io import atomic_path  # noqa: E402


def save_figure(figure: plt.Figure, pdf_path: str | os.PathLike, png_path: str | os.PathLike,
                dpi: int = 150) -> None:
    """Write ``figure`` atomically as PDF and PNG, then close it."""
    for path, fmt in ((pdf_path, "pdf"), (png_path, "png")):
        with atomic_path(path) as tmp:
            figure.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight")
    plt.close(figure)


def json_attr(attrs: dict, key: str):
    """A list or dict attribute of a measurement file (``io.write_h5`` stores them as JSON)."""
    return json.loads(attrs[key])


def claims_title(table) -> str:
    """One line per claim row (``run == "claim"``) of a figure's tidy table: claim, verdict,
    statistic, value and threshold, for the figure's title."""
    claims = table[table["run"] == "claim"]
    return "\n".join(f"{row['claim']}: {row['verdict']} ({row['statistic']} = {row['value']:.3g}, "
                     f"threshold {row['threshold']})" for _, row in claims.iterrows())


def show_skipped(axes, status: str) -> None:
    """Write a skipped measurement's ``status`` on every one of ``axes`` instead of a plot."""
    for ax in axes:
        ax.text(0.5, 0.5, status, ha="center", va="center", wrap=True)
        ax.set_axis_off()
