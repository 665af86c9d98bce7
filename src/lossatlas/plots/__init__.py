"""Figure functions: tidy data in, matplotlib figure out; ``save_figure`` writes PDF and PNG."""

from __future__ import annotations

import json
import os
from io import BytesIO

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from ..io import write_bytes  # noqa: E402


def save_figure(figure: plt.Figure, pdf_path: str | os.PathLike, png_path: str | os.PathLike,
                dpi: int = 150) -> None:
    """Write ``figure`` atomically as PDF and PNG, then close it. Each is rendered in memory
    first, so a failed write (full disk) is an ``OSError`` naming its file."""
    for path, fmt in ((pdf_path, "pdf"), (png_path, "png")):
        rendered = BytesIO()
        figure.savefig(rendered, format=fmt, dpi=dpi, bbox_inches="tight")
        write_bytes(rendered.getvalue(), path)
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
