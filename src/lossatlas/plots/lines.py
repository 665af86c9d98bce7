"""Loss and accuracy along 1D lines between solutions (Keskar et al. 2017; Goodfellow et al. 2015)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

LINE_TITLES = {
    "lb_to_sb": "LB (α=0) → SB (α=1)",
    "lb_to_continuation": "LB (α=0) → SB continued from LB (α=1)",
}


def plot_lb_sb_interpolation(table: pd.DataFrame) -> plt.Figure:
    """One row of panels per line kind: loss (left, log scale) and accuracy (right), train and test,
    mean over seeds with a band; lines skipped because a run diverged are listed in the title.

    ``table``: tidy rows with columns line, status, alpha, split, loss, accuracy.
    """
    sns.set_theme(style="whitegrid", context="paper")
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
                ax.set_ylabel("cross-entropy (nats)")
            else:
                ax.set_ylabel("accuracy")
            ax.set_xlabel("α")
            ax.set_title(title, fontsize=9)
    figure.tight_layout()
    return figure
