"""Random-subspace training figure (intrinsic dimension, Li, Farkhoor, Liu & Yosinski 2018; the
random cuts of the wedge model, Fort & Jastrzebski 2019): accuracy reached against the subspace
dimension d for inits at several radius scales α, and d_int (the first d of the grid whose mean test
accuracy reaches ``fraction`` × the full-space baseline of the same α), with the tidy table and
claim rows the figure is drawn from.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D

from ..claims import claim_row
from . import add_title, claims_title, use_style

WORK = "Fort & Jastrzebski 2019; Li et al. 2018"
FIGURE = "subspace_training"
MAX_RATIO = 0.1


def subspace_training_table(finals: dict[str, dict], settings: dict[str, dict], dim_full: int,
                            fraction: float) -> pd.DataFrame:
    """Tidy table: one row per run (``finals``: run → last ``metrics.csv`` row plus ``status``;
    ``settings``: run → run settings with ``init_scale`` and ``parameterization``), then one
    ``run == "intrinsic_dimension"`` row per init scale (baseline test accuracy, threshold, d_int or
    NaN when no d of the grid reaches it), one ``run == "radius_dependence"`` row per d (Spearman
    correlation of mean test accuracy with the init scale), and the claim rows."""
    rows = []
    for run, final in finals.items():
        run_settings = settings[run]
        parameterization = run_settings["parameterization"]
        kind = parameterization["kind"]
        ok = final["status"] == "ok"
        row = {"run": run, "group": run.rsplit("-s", 1)[0], "seed": run_settings["seed"],
               "init_scale": float(run_settings["init_scale"]),
               "dim": parameterization["dim"] if kind == "subspace" else dim_full, "kind": kind,
               "status": "ok" if ok else f"skipped: {run} {final['status']}"}
        for key in ("train_loss", "train_acc", "test_loss", "test_acc", "param_norm",
                    "dist_from_init", "epoch"):
            row[key] = final[key] if ok else np.nan
        rows.append(row)
    runs = pd.DataFrame(rows)
    ok = runs[runs["status"] == "ok"]
    means = ok.groupby(["kind", "init_scale", "dim"])["test_acc"].mean()
    summary, dependence = [], []
    for scale in sorted(runs["init_scale"].unique()):
        baseline = means.get(("full", scale, dim_full), np.nan)
        threshold = fraction * baseline
        reached = [dim for dim in sorted(runs.loc[runs["kind"] == "subspace", "dim"].unique())
                   if means.get(("subspace", scale, dim), -np.inf) >= threshold]
        summary.append({"run": "intrinsic_dimension", "init_scale": scale, "dim_full": dim_full,
                        "baseline_test_acc": baseline, "fraction": fraction,
                        "threshold_test_acc": threshold,
                        "d_int": float(reached[0]) if reached and np.isfinite(baseline) else np.nan})
    subspace_means = means.get("subspace", pd.Series(dtype=float)).reset_index()
    for dim, group in subspace_means.groupby("dim"):
        value = (group["init_scale"].rank().corr(group["test_acc"].rank())
                 if len(group) >= 3 else np.nan)
        dependence.append({"run": "radius_dependence", "dim": dim, "spearman": value,
                           "test_acc_min": group["test_acc"].min(),
                           "test_acc_max": group["test_acc"].max(),
                           "best_init_scale": float(group.loc[group["test_acc"].idxmax(),
                                                              "init_scale"])})
    summary, dependence = pd.DataFrame(summary), pd.DataFrame(dependence)
    claims = [_dint_claim(summary, runs, dim_full, fraction), _radius_claim(dependence, runs)]
    table = pd.concat([runs, summary, dependence, pd.DataFrame(claims)], ignore_index=True)
    return table.astype({"seed": "Int64", "dim": "Int64", "epoch": "Int64", "dim_full": "Int64"})


def _skipped(runs: pd.DataFrame) -> str:
    skipped = runs.loc[runs["status"] != "ok", "status"]
    return "; ".join(skipped) if len(skipped) else ""


def _dint_claim(summary: pd.DataFrame, runs: pd.DataFrame, dim_full: int, fraction: float) -> dict:
    """d_int ≪ D at the init scale closest to the default init (α = 1). The grid of d only brackets
    d_int (above the grid's d before it, at most the first d that reaches the threshold): the claim
    holds when the bracket's top is below ``MAX_RATIO`` × D, does not hold when its bottom is at
    or above it, and is inconclusive when the threshold falls inside the bracket (or above the
    largest d, none reaching it)."""
    row = summary.loc[(summary["init_scale"] - 1.0).abs().idxmin()]
    # the runs it reads: the subspace runs and the full-space baselines at that scale (the
    # baselines are the trained solutions whose fit the regime checks)
    runs_at_scale = runs.loc[runs["init_scale"] == row["init_scale"], "run"].tolist()
    percent = round(100 * fraction)
    claim = f"d_int{percent} << D (random subspaces train with far fewer dimensions than D)"
    statistic = f"d_int{percent} / D at init scale {row['init_scale']:g}"
    threshold = f"< {MAX_RATIO}"

    def verdict(value, holds, reason):
        return claim_row(WORK, FIGURE, claim, statistic, value, threshold, holds, reason=reason,
                         runs=runs_at_scale)

    if not np.isfinite(row["baseline_test_acc"]):
        return verdict(None, None, "no full-space baseline " + (_skipped(runs) or "run"))
    dims = sorted(runs.loc[runs["kind"] == "subspace", "dim"].unique())
    if np.isfinite(row["d_int"]):
        # the grid brackets d_int: above the grid's d before it (not reached), at most d_int
        below = max((dim for dim in dims if dim < row["d_int"]), default=0)
        ratio, lower = row["d_int"] / dim_full, below / dim_full
        if ratio < MAX_RATIO or lower >= MAX_RATIO:
            return verdict(ratio, ratio < MAX_RATIO, _skipped(runs))
        return verdict(ratio, None,
                       f"the grid brackets d_int{percent} in ({below:g}, {row['d_int']:g}]: "
                       f"d_int{percent} / D in ({lower:.3g}, {ratio:.3g}] straddles {MAX_RATIO:g}; "
                       f"a d between {below:g} and {row['d_int']:g} decides")
    largest = dims[-1]
    if largest / dim_full < MAX_RATIO:
        return verdict(largest / dim_full, None,
                       f"not reached by the largest d={largest}: d_int{percent} / D > "
                       f"{largest / dim_full:.3g}, below {MAX_RATIO:g}; a larger d decides")
    return verdict(largest / dim_full, False,
                   f"not reached by the largest d={largest}: the value is a lower bound")


def _radius_claim(dependence: pd.DataFrame, runs: pd.DataFrame) -> dict:
    """Accuracy at fixed d rises with the init radius (thicker wedges further out), read from the
    subspace runs alone (no full-space baseline)."""
    claim = "at fixed d, subspace training reaches higher accuracy from larger-radius inits"
    statistic = "mean over d of Spearman(init scale, mean test accuracy)"
    subspace_runs = runs.loc[runs["kind"] == "subspace", "run"].tolist()
    values = dependence["spearman"].dropna() if len(dependence) else pd.Series(dtype=float)
    if values.empty:
        return claim_row(WORK, FIGURE, claim, statistic, None, "> 0", None,
                         reason="needs >= 3 init scales with finished runs " + _skipped(runs),
                         runs=subspace_runs)
    value = float(values.mean())
    return claim_row(WORK, FIGURE, claim, statistic, value, "> 0", value > 0,
                     reason=_skipped(runs), runs=subspace_runs)


def plot_subspace_training(table: pd.DataFrame, fraction: float) -> plt.Figure:
    """Three panels: final test and train accuracy against d (log axis; mean over seeds with the
    seeds as dots), one colour per init scale, with each scale's full-space baseline dashed and,
    on the test panel, the d_int threshold ``fraction`` × baseline dotted; and d_int against the
    init scale (open triangles at the largest d where it was not reached). The claims, all of
    them, in the title."""
    use_style()
    figure, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    runs = table[table["kind"].isin(["subspace", "full"]) & (table["status"] == "ok")]
    summary = table[table["run"] == "intrinsic_dimension"]
    scales = sorted(table.loc[table["kind"].isin(["subspace", "full"]), "init_scale"].unique())
    colours = dict(zip(scales, sns.color_palette("colorblind", len(scales))))
    subspace = runs[runs["kind"] == "subspace"]
    percent = round(100 * fraction)
    for ax, metric in zip(axes[:2], ("test_acc", "train_acc")):
        for scale in scales:
            points = subspace[subspace["init_scale"] == scale]
            mean = points.groupby("dim")[metric].mean()
            ax.plot(mean.index, mean.values, "o-", color=colours[scale],
                    label=f"init scale {scale:g}")
            ax.plot(points["dim"], points[metric], ".", color=colours[scale], alpha=0.4)
            baseline = runs.loc[(runs["kind"] == "full") & (runs["init_scale"] == scale), metric]
            if len(baseline):
                ax.axhline(baseline.mean(), color=colours[scale], ls="--", lw=1.2)
                if metric == "test_acc":
                    ax.axhline(fraction * baseline.mean(), color=colours[scale], ls=":", lw=1.2)
        ax.set_xscale("log")
        dims = sorted(subspace["dim"].unique())
        ax.set_xticks(dims, [str(d) for d in dims])
        ax.minorticks_off()
        split = metric.split("_")[0]
        ax.set(xlabel="subspace dimension d", ylabel=f"{split} accuracy",
               title=f"{split.capitalize()} accuracy")
    handles = axes[0].get_legend_handles_labels()[0]
    handles += [Line2D([], [], color="grey", ls="--", label="full-space baseline"),
                Line2D([], [], color="grey", ls=":", label=f"{percent}% of baseline (d_int{percent})")]
    axes[0].legend(handles=handles, loc="best")
    dim_full = int(summary["dim_full"].iloc[0]) if len(summary) else None
    reached = summary[summary["d_int"].notna()]
    missed = summary[summary["d_int"].isna() & summary["baseline_test_acc"].notna()]
    axes[2].plot(reached["init_scale"], reached["d_int"], "o-", color="black",
                 label=f"d_int{percent}")
    if len(missed) and len(subspace):
        axes[2].plot(missed["init_scale"], [subspace["dim"].max()] * len(missed), "^",
                     color="black", mfc="none", ms=9, label="not reached (≥ largest d)")
    if dim_full:
        axes[2].axhline(dim_full, color="grey", ls=":", label=f"D = {dim_full}")
    axes[2].set(xscale="log", yscale="log", xlabel="init scale (× default init radius)",
                ylabel="d", title=f"d_int{percent}: first d reaching {percent}% of the baseline")
    axes[2].minorticks_off()
    axes[2].set_xticks(scales, [f"{scale:g}" for scale in scales])
    axes[2].margins(x=0.15)
    axes[2].legend(loc="best")
    add_title(figure, claims_title(table))
    return figure
