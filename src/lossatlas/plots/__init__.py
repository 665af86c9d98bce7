"""Figure functions: tidy data in, matplotlib figure out; ``save_figure`` writes PDF and PNG."""

from __future__ import annotations

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
