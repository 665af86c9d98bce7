"""Figure functions: tidy data in, matplotlib figure out; ``save_figure`` writes PDF and PNG.

Every figure draws in one style (``use_style``: seaborn's whitegrid at paper scale, one set of font
sizes) and one notation: surfaces live on the plane θ + x·d₁ + y·d₂; a line between two points is
parameterized by t ∈ [0, 1]; the init scale is written "init scale" (never α); a loss threshold is
L + δ; θ₀ is the init and θ* a trained solution.
"""

from __future__ import annotations

import json
import os
import textwrap
from io import BytesIO

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import LogFormatter  # noqa: E402

from ..io import write_bytes  # noqa: E402

FONT_SIZES = {"font.size": 8, "axes.titlesize": 9, "axes.labelsize": 8, "xtick.labelsize": 7,
              "ytick.labelsize": 7, "legend.fontsize": 7, "legend.title_fontsize": 7,
              "figure.titlesize": 9}
TITLE_FONT_SIZE = 8
# Characters of a title line per inch of figure width at TITLE_FONT_SIZE (DejaVu Sans averages
# about 0.55 em per character).
TITLE_CHARS_PER_INCH = 72 / (0.55 * TITLE_FONT_SIZE)


def use_style() -> None:
    """The style of every figure: seaborn whitegrid at paper scale with ``FONT_SIZES``."""
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="paper", rc=FONT_SIZES)


def save_image(figure: plt.Figure, path: str | os.PathLike, dpi: int = 150) -> None:
    """Write ``figure`` atomically in the format its suffix names (png, pdf, svg); the figure
    stays open. It is rendered in memory first, so a failed write (full disk) is an ``OSError``
    naming its file."""
    fmt = os.path.splitext(os.fspath(path))[1].lstrip(".")
    rendered = BytesIO()
    figure.savefig(rendered, format=fmt, dpi=dpi, bbox_inches="tight")
    write_bytes(rendered.getvalue(), path)


def save_figure(figure: plt.Figure, pdf_path: str | os.PathLike, png_path: str | os.PathLike,
                dpi: int = 150) -> None:
    """Write ``figure`` atomically as PDF and PNG (``save_image``), then close it."""
    for path in (pdf_path, png_path):
        save_image(figure, path, dpi)
    plt.close(figure)


def json_attr(attrs: dict, key: str):
    """A list or dict attribute of a measurement file (``io.write_h5`` stores them as JSON)."""
    return json.loads(attrs[key])


MAX_TITLE_RUNS_CHARS = 40


def claims_title(table) -> str:
    """One line per claim row (``run == "claim"``) of a figure's tidy table: claim (with its runs
    when they are few enough to read), verdict, statistic, value and threshold, for the figure's
    title."""
    claims = table[table["run"] == "claim"]
    lines = []
    for _, row in claims.iterrows():
        runs = row["runs"] if "runs" in row and isinstance(row["runs"], str) else ""
        named = f" [{runs}]" if runs and len(runs) <= MAX_TITLE_RUNS_CHARS else ""
        lines.append(f"{row['claim']}{named}: {row['verdict']} ({row['statistic']} = "
                     f"{row['value']:.3g}, threshold {row['threshold']})")
    return "\n".join(lines)


def wrap_title(text: str, width_inches: float) -> str:
    """``text`` with every line wrapped to ``width_inches`` at ``TITLE_FONT_SIZE``, so that a title
    never makes a figure wider than its axes."""
    width = max(20, int(width_inches * TITLE_CHARS_PER_INCH))
    return "\n".join(wrapped for line in text.splitlines()
                     for wrapped in textwrap.wrap(line, width) or [""])


def add_title(figure: plt.Figure, text: str, bottom_inches: float = 0.0) -> None:
    """Lay the axes out (``tight_layout``) below a figure title (e.g. ``claims_title``) wrapped to
    the figure's width, leaving ``bottom_inches`` free at the bottom (for a figure legend)."""
    text = wrap_title(text, figure.get_figwidth()) if text else ""
    lines = text.count("\n") + 1 if text else 0
    height = figure.get_figheight()
    top = 1 - min(0.5, lines * TITLE_FONT_SIZE * 1.35 / 72 / height)
    figure.tight_layout(rect=(0, min(0.4, bottom_inches / height), 1, top))
    if text:
        figure.suptitle(text, fontsize=TITLE_FONT_SIZE, y=0.995, va="top")


def show_skipped(axes, status: str) -> None:
    """Write a skipped measurement's ``status`` on every one of ``axes`` instead of a plot."""
    for ax in axes:
        ax.text(0.5, 0.5, status, ha="center", va="center", wrap=True)
        ax.set_axis_off()


def log_axis(ax, axis: str, values) -> None:
    """A log axis for positive ``values``; symlog, linear up to the smallest positive value, when
    some are ≤ 0 (an L2 of 0, a negative trace estimate)."""
    values = np.asarray(values, dtype=float)
    positive = values[values > 0]
    scale = {"x": ax.set_xscale, "y": ax.set_yscale}[axis]
    if len(positive) == len(values[np.isfinite(values)]):
        scale("log")
        plain_log_labels({"x": ax.xaxis, "y": ax.yaxis}[axis])
    elif len(positive):
        scale("symlog", linthresh=positive.min())


class PlainLogFormatter(LogFormatter):
    """``LogFormatter`` (which minor ticks get a label) writing each label with ``%g``."""

    def _num_to_string(self, x, vmin, vmax):
        return f"{x:g}"


def plain_log_labels(axis) -> None:
    """Tick labels of a log ``axis`` as plain numbers (2, 0.5, 1000; not 2 × 10⁰), minor ticks
    labelled only where the axis spans less than a decade."""
    axis.set_major_formatter(PlainLogFormatter())
    axis.set_minor_formatter(PlainLogFormatter(labelOnlyBase=False))
