"""Loss and accuracy along 1D lines between solutions (Keskar et al. 2017; Goodfellow et al. 2015)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from . import plain_log_labels, use_style

LINE_TITLES = {
    "lb_to_sb": "LB (t = 0) → SB (t = 1)",
    "lb_to_continuation": "LB (t = 0) → SB continued from LB (t = 1)",
}


def plot_lb_sb_interpolation(table: pd.DataFrame) -> plt.Figure:
    """One row of panels per line kind: loss (left, log scale) and accuracy (right), train and test,
    mean over seeds with a band; lines skipped because a run diverged are listed in the title.

    ``table``: tidy rows with columns line, status, alpha, split, loss, accuracy.
    """
    use_style()
    lines = [line for line in LINE_TITLES if line in set(table["line"])]
    figure, axes = plt.subplots(len(lines), 2, figsize=(9, 3.2 * len(lines)), squeeze=False)
    for row, line in enumerate(lines):
        rows = table[table["line"] == line]
        ok = rows[rows["status"] == "ok"]
        skipped = sorted(set(rows.loc[rows["status"] != "ok", "status"]))
        title = LINE_TITLES[line] + (f"  [{'; '.join(skipped)}]" if skipped else "")
        for col, metric in enumerate(("loss", "accuracy")):
            ax = axes[row, col]
            if not ok.empty:
                sns.lineplot(data=ok, x="alpha", y=metric, hue="split", style="split",
                             markers=True, dashes=False, ax=ax, errorbar=("pi", 100))
                for alpha in (0.0, 1.0):
                    ax.axvline(alpha, color="grey", lw=0.8, ls=":")
            if metric == "loss":
                ax.set_yscale("log")
                plain_log_labels(ax.yaxis)
                ax.set_ylabel("cross-entropy (nats)")
            else:
                ax.set_ylabel("accuracy")
            ax.set_xlabel("t on (1 − t) θ_LB + t θ_SB")
            ax.set_title(title, fontsize=9)
    figure.tight_layout()
    return figure


def plot_surface_1d(arrays: dict[str, np.ndarray], name: str) -> plt.Figure:
    """A 1D surface file (``xcoordinates`` (A,), ``{train,test}_{loss,acc}`` (A,), losses in nats,
    accuracies in percent): loss (log scale) and accuracy against the coordinate, train and
    test, the checkpoint (coordinate 0) and, for an interpolation, its end (1) dotted."""
    for key in ("xcoordinates", "train_loss", "test_loss", "train_acc", "test_acc"):
        if key not in arrays:
            raise ValueError(f"1D surface {name!r} lacks array {key!r}; has {sorted(arrays)}")
    use_style()
    xs = np.asarray(arrays["xcoordinates"], dtype=float)
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, metric, label in ((axes[0], "loss", "loss (nats)"), (axes[1], "acc", "accuracy (%)")):
        for split, colour in (("train", "C0"), ("test", "C1")):
            ax.plot(xs, arrays[f"{split}_{metric}"], "o-", ms=2.5, color=colour, label=split)
        for mark in (0.0, 1.0):
            if xs.min() <= mark <= xs.max():
                ax.axvline(mark, color="grey", lw=0.8, ls=":")
        ax.set(xlabel="coordinate along the line", ylabel=label, title=f"{name}: {label}")
        ax.legend()
    axes[0].set_yscale("log")
    plain_log_labels(axes[0].yaxis)
    figure.tight_layout()
    return figure
