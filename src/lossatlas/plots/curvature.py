"""Curvature figures: the Hessian spectrum at the solutions (Sagun et al. 2017; Papyan 2019;
Keskar et al. 2017) and λ_max, Tr H and the gradient overlap along training (Gur-Ari et al. 2018;
Cohen et al. 2021), with the tidy tables they are drawn from.

A measurement is ``(arrays, attrs)`` as ``io.read_h5`` returns a file of ``measure_curvature``;
``attrs["status"]`` is ``"ok"`` or the reason the run was skipped.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import MaxNLocator

from ..stats import count_outliers

LAMBDA_MAX_CLAIM = "lambda_max(LB) > lambda_max(SB)"


def stability_threshold(lr: float, momentum: float) -> float:
    """Largest sharpness at which gradient descent with step ``lr`` and heavy-ball momentum β is
    stable on a quadratic: 2(1 + β)/η (2/η without momentum; Cohen et al. 2021)."""
    return 2.0 * (1.0 + momentum) / lr


def hessian_spectrum_table(measurements: dict[str, tuple[dict, dict]]) -> pd.DataFrame:
    """One row per run (``measurements``: run → final-checkpoint measurement): λ_max, Tr H (Hutch++),
    the Gauss–Newton λ_max, outlier counts of H and G (``count_outliers`` on the top-k) and C; then a
    claim row (``run == "claim"``) whether λ_max of the largest-batch run exceeds that of the
    smallest-batch run (``holds`` is empty when the runs share a batch size or one was skipped)."""
    rows = []
    for run, (arrays, attrs) in measurements.items():
        row = {"run": run, "group": attrs["group"], "status": attrs["status"],
               "batch_size": attrs["batch_size"]}
        if attrs["status"] == "ok":
            row.update({"lambda_max": attrs["lambda_max"], "trace": attrs["trace"],
                        "gauss_newton_lambda_max": float(arrays["gauss_newton_top"][0]),
                        "outlier_count": count_outliers(arrays["hessian_top"]),
                        "gauss_newton_outlier_count": count_outliers(arrays["gauss_newton_top"]),
                        "num_classes": attrs["num_classes"], "top_k": attrs["top_k"],
                        "n_samples": attrs["n_samples"], "bn_mode": attrs["bn_mode"]})
        rows.append(row)
    table = pd.DataFrame(rows)
    counts = ["batch_size", "outlier_count", "gauss_newton_outlier_count", "num_classes", "top_k",
              "n_samples"]
    table = table.astype({column: "Int64" for column in counts if column in table})
    sb = table.loc[table["batch_size"].idxmin()]
    lb = table.loc[table["batch_size"].idxmax()]
    comparable = sb["batch_size"] < lb["batch_size"] and sb["status"] == lb["status"] == "ok"
    claim = {"run": "claim", "claim": LAMBDA_MAX_CLAIM, "sb_run": sb["run"], "lb_run": lb["run"],
             "holds": bool(lb["lambda_max"] > sb["lambda_max"]) if comparable else None}
    return pd.concat([table, pd.DataFrame([claim])], ignore_index=True)


def curvature_along_training_table(measurements: list[tuple[dict, dict]], overlap_k: int | None
                                   ) -> pd.DataFrame:
    """One row per (run, epoch checkpoint): λ_max, Tr H, gradient norm, the overlap ‖P_k g‖²/‖g‖²
    with the top-k Hessian eigenspace (k = ``overlap_k``, None: C), loss, lr, and the stability
    threshold 2(1 + β)/η for full-batch SGD runs (batch size ≥ training-set size; else NaN)."""
    rows = []
    for arrays, attrs in measurements:
        row = {key: attrs[key] for key in ("run", "group", "checkpoint", "status", "optimizer",
                                           "momentum", "batch_size")}
        if attrs["status"] == "ok":
            k = attrs["num_classes"] if overlap_k is None else overlap_k
            if k > len(arrays["gradient_overlap"]):
                raise ValueError(f"overlap_k={k} exceeds the {len(arrays['gradient_overlap'])} "
                                 f"eigenvectors measured for {attrs['run']} (curvature.top_k)")
            full_batch = attrs["batch_size"] >= attrs["n_train"] and attrs["optimizer"] == "sgd"
            row.update({"epoch": attrs["epoch"], "step": attrs["step"], "loss": attrs["loss"],
                        "lambda_max": attrs["lambda_max"], "trace": attrs["trace"],
                        "gradient_norm": attrs["gradient_norm"], "overlap_k": k,
                        "gradient_overlap": float(arrays["gradient_overlap"][k - 1]),
                        "lr": attrs["lr"], "full_batch": full_batch,
                        "stability_threshold": (stability_threshold(attrs["lr"], attrs["momentum"])
                                                if full_batch else np.nan)})
        rows.append(row)
    return pd.DataFrame(rows)


def _skipped_note(statuses) -> str:
    skipped = sorted({status for status in statuses if status != "ok"})
    return f"  [{'; '.join(skipped)}]" if skipped else ""


def plot_hessian_spectrum(measurements: dict[str, tuple[dict, dict]], table: pd.DataFrame
                          ) -> plt.Figure:
    """Three panels: SLQ eigenvalue densities of H per run (log density), the top-k eigenvalues of H
    (filled) and G (open) per run against their rank, and the outlier counts of H and G per run
    against the number of classes C (dashed line). ``table`` from ``hessian_spectrum_table``."""
    sns.set_theme(style="whitegrid", context="paper")
    figure, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    colours = dict(zip(measurements, sns.color_palette("colorblind", len(measurements))))
    ok = {run: m for run, m in measurements.items() if m[1]["status"] == "ok"}
    runs = table[(table["run"] != "claim") & (table["status"] == "ok")]
    for run, (arrays, attrs) in ok.items():
        label = f"{attrs['group']} (batch {attrs['batch_size']})"
        density = np.maximum(arrays["density"], 1e-12)
        axes[0].plot(arrays["density_grid"], density, color=colours[run], label=label)
        rank = np.arange(1, len(arrays["hessian_top"]) + 1)
        axes[1].plot(rank, arrays["hessian_top"], "o-", color=colours[run], ms=4, label=f"{label}: H")
        axes[1].plot(rank, arrays["gauss_newton_top"], "o", color=colours[run], ms=8,
                     mfc="none", label=f"{label}: G")
    axes[0].set_yscale("log")
    floor = max((m[0]["density"].max() for m in ok.values()), default=1.0) * 1e-6
    axes[0].set_ylim(bottom=floor)
    axes[0].set(xlabel="eigenvalue of H", ylabel="density (SLQ)", title="Hessian spectral density")
    axes[1].set_yscale("log")
    axes[1].set(xlabel="rank i", ylabel="λ_i", title="Top eigenvalues: H (filled) vs G (open)")
    axes[1].xaxis.set_major_locator(MaxNLocator(integer=True))
    if not runs.empty:
        counts = runs.melt(id_vars=["group"], value_vars=["outlier_count", "gauss_newton_outlier_count"],
                           var_name="matrix", value_name="outliers")
        counts["matrix"] = counts["matrix"].map({"outlier_count": "H",
                                                 "gauss_newton_outlier_count": "G"})
        sns.barplot(data=counts, x="group", y="outliers", hue="matrix", errorbar=None, ax=axes[2])
        classes = int(runs["num_classes"].iloc[0])
        axes[2].axhline(classes, color="black", ls="--", lw=1, label=f"C = {classes}")
        axes[2].legend(fontsize=7)
    axes[2].set(xlabel="run", ylabel="outlier eigenvalues",
                title="Outliers (above the largest log-gap)")
    for ax in axes[:2]:
        ax.legend(fontsize=7)
    claim = table[table["run"] == "claim"].iloc[0]
    verdict = {True: "holds", False: "fails"}.get(claim["holds"], "not checked")
    figure.suptitle(f"{LAMBDA_MAX_CLAIM}: {verdict}" + _skipped_note(table["status"].dropna()),
                    fontsize=10)
    figure.tight_layout()
    return figure


def plot_curvature_along_training(table: pd.DataFrame) -> plt.Figure:
    """λ_max (with the dashed stability threshold 2(1 + β)/η of full-batch runs), Tr H and the
    gradient overlap with the top-k Hessian eigenspace against the epoch (symlog axis), one line per
    run. ``table`` from ``curvature_along_training_table``."""
    sns.set_theme(style="whitegrid", context="paper")
    figure, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    ok = table[table["status"] == "ok"].sort_values(["run", "epoch"])
    colours = dict(zip(ok["run"].unique(), sns.color_palette("colorblind", ok["run"].nunique())))
    for run, rows in ok.groupby("run", sort=False):
        first = rows.iloc[0]
        label = f"{first['group']} (batch {first['batch_size']})"
        for ax, column in zip(axes, ("lambda_max", "trace", "gradient_overlap")):
            ax.plot(rows["epoch"], rows[column], "o-", ms=3, color=colours[run], label=label)
        if rows["full_batch"].astype(bool).all():
            axes[0].plot(rows["epoch"], rows["stability_threshold"], ls="--", color=colours[run],
                         label=f"2(1+β)/η of {first['group']}")
    overlap_k = int(ok["overlap_k"].iloc[0]) if not ok.empty else None
    axes[0].set(ylabel="λ_max", title="Sharpness λ_max")
    axes[0].set_yscale("log")
    axes[1].set(ylabel="Tr H (Hutch++)", title="Hessian trace")
    axes[2].set(ylabel=f"‖P_k g‖² / ‖g‖²  (k = {overlap_k})", ylim=(0, 1.02),
                title="Gradient in the top-k eigenspace")
    for ax in axes:
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xlim(left=0)
        ax.set_xlabel("epoch")
    axes[0].legend(fontsize=7)
    note = _skipped_note(table["status"])
    if note:
        figure.suptitle(note.strip(), fontsize=10)
    figure.tight_layout()
    return figure
