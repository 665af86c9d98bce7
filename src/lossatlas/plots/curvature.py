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
from matplotlib.lines import Line2D
from matplotlib.ticker import FormatStrFormatter, MaxNLocator

from ..claims import claim_row
from ..stats import count_outliers
from . import add_title, claims_title, log_axis, use_style

FIGURE = "hessian_spectrum"
KESKAR = "Keskar et al. 2017"
SAGUN = "Sagun et al. 2017; Papyan 2019"
COHEN = "Cohen et al. 2021"
GUR_ARI = "Gur-Ari et al. 2018"
LAMBDA_MAX_CLAIM = "the LB solution is sharper: λ_max(LB) > λ_max(SB)"
OUTLIER_CLAIM = "the Hessian has about C outlier eigenvalues above the bulk"
EDGE_CLAIM = "full-batch GD trains at the edge of stability: λ_max ≈ 2(1 + β)/η late in training"
OVERLAP_CLAIM = "the gradient lies mostly in the top-k Hessian eigenspace"
FORT_GANGULI = "Fort & Ganguli 2019"
FIGURE_ALONG = "curvature_along_training"
TRANSIENT_CLAIM = ("SGD transiently visits higher curvature before settling in flatter regions: "
                   "λ_max peaks inside training, then falls")


def stability_threshold(lr: float, momentum: float) -> float:
    """Largest sharpness at which gradient descent with step ``lr`` and heavy-ball momentum β is
    stable on a quadratic: 2(1 + β)/η (2/η without momentum; Cohen et al. 2021)."""
    return 2.0 * (1.0 + momentum) / lr


def hessian_spectrum_table(measurements: dict[str, tuple[dict, dict]], outlier_tolerance: int
                           ) -> pd.DataFrame:
    """One row per run (``measurements``: run → final-checkpoint measurement): λ_max, Tr H (Hutch++),
    the Gauss–Newton λ_max, outlier counts of H and G (``count_outliers`` on the top-k) and C; then
    the claim rows (``claims.claim_row``): λ_max of the largest-batch run exceeds that of the
    smallest-batch run (Keskar et al. 2017), and per run the outliers of H number C within
    ``outlier_tolerance`` (Sagun et al. 2017; Papyan 2019)."""
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
    pair = [lb["run"], sb["run"]]
    statistic = "λ_max(LB) / λ_max(SB)"
    if sb["batch_size"] == lb["batch_size"]:
        claims = [claim_row(KESKAR, FIGURE, LAMBDA_MAX_CLAIM, statistic, None, "> 1", None,
                            "the runs share one batch size", pair)]
    elif sb["status"] != "ok" or lb["status"] != "ok":
        claims = [claim_row(KESKAR, FIGURE, LAMBDA_MAX_CLAIM, statistic, None, "> 1", None,
                            _skipped_note([sb["status"], lb["status"]]).strip(" []"), pair)]
    else:
        ratio = float(lb["lambda_max"] / sb["lambda_max"])
        claims = [claim_row(KESKAR, FIGURE, LAMBDA_MAX_CLAIM, statistic, ratio, "> 1", ratio > 1,
                            runs=pair)]
    for _, row in table.iterrows():
        classes = (f", C = {row['num_classes']:g} classes" if pd.notna(row.get("num_classes"))
                   else "")
        statistic = ("outliers of H (top eigenvalues above the largest gap in log-eigenvalue "
                     f"among the top-k) − C{classes}")
        threshold = f"within ±{outlier_tolerance}"
        if row["status"] != "ok":
            claims.append(claim_row(SAGUN, FIGURE, OUTLIER_CLAIM, statistic, None, threshold, None,
                                    row["status"], [row["run"]]))
            continue
        excess = int(row["outlier_count"] - row["num_classes"])
        claims.append(claim_row(SAGUN, FIGURE, OUTLIER_CLAIM, statistic, excess, threshold,
                                abs(excess) <= outlier_tolerance, runs=[row["run"]]))
    return pd.concat([table, pd.DataFrame(claims)], ignore_index=True)


def curvature_along_training_table(measurements: list[tuple[dict, dict]], overlap_k: int | None,
                                   stability_window: float, stability_tolerance: float,
                                   min_overlap: float, min_peak_drop: float) -> pd.DataFrame:
    """One row per (run, epoch checkpoint): λ_max, Tr H, gradient norm, the overlap ‖P_k g‖²/‖g‖²
    with the top-k Hessian eigenspace (k = ``overlap_k``, None: C) and with the top eigenvector
    alone (``gradient_overlap_top1``), loss, lr, and the stability threshold 2(1 + β)/η for
    full-batch SGD runs (batch size ≥ training-set size; else NaN); then the claim rows of
    ``along_training_claims``."""
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
                        "gradient_overlap_top1": float(arrays["gradient_overlap"][0]),
                        "lr": attrs["lr"], "full_batch": full_batch,
                        "stability_threshold": (stability_threshold(attrs["lr"], attrs["momentum"])
                                                if full_batch else np.nan)})
        rows.append(row)
    table = pd.DataFrame(rows)
    claims = along_training_claims(table, stability_window, stability_tolerance, min_overlap,
                                   min_peak_drop)
    return pd.concat([table, pd.DataFrame(claims)], ignore_index=True)


def along_training_claims(table: pd.DataFrame, stability_window: float,
                          stability_tolerance: float, min_overlap: float,
                          min_peak_drop: float) -> list[dict]:
    """Claim rows of ``curvature_along_training`` (``table``: its per-checkpoint rows). Per
    full-batch run (Cohen et al. 2021): mean λ_max over the checkpoints in the last
    ``stability_window`` of its epochs, over 2(1 + β)/η, within 1 ± ``stability_tolerance``. Per
    minibatch run (Fort & Ganguli 2019): λ_max peaks at a checkpoint strictly inside training and
    ends at least ``min_peak_drop`` (a fraction) below that peak. Per run (Gur-Ari et al. 2018):
    mean overlap ‖P_k g‖²/‖g‖² over the checkpoints after epoch 0 ≥ ``min_overlap``. A skipped
    run gives inconclusive rows."""
    figure = FIGURE_ALONG
    claims = []
    full_batch_runs = (set(table.loc[table["full_batch"].fillna(False).astype(bool), "run"])
                       if "full_batch" in table else set())
    for run, rows in table.groupby("run", sort=False):
        ok = rows[rows["status"] == "ok"]
        skipped = _skipped_note(rows["status"]).strip(" []")
        statistic = "mean λ_max over the last epochs / 2(1 + β)/η"
        threshold = f"within 1 ± {stability_tolerance:g}"
        if run in full_batch_runs:
            if skipped:
                claims.append(claim_row(COHEN, figure, EDGE_CLAIM, statistic, None, threshold,
                                        None, skipped, [run]))
            else:
                last = ok[ok["epoch"] >= (1 - stability_window) * ok["epoch"].max()]
                ratio = float((last["lambda_max"] / last["stability_threshold"]).mean())
                claims.append(claim_row(
                    COHEN, figure, EDGE_CLAIM,
                    f"{statistic} (epochs {int(last['epoch'].min())}–{int(last['epoch'].max())})",
                    ratio, threshold, abs(ratio - 1) <= stability_tolerance, runs=[run]))
        else:
            claims.append(transient_curvature_claim(ok, run, skipped, min_peak_drop))
        statistic = "mean ‖P_k g‖²/‖g‖² over checkpoints after epoch 0"
        late = ok[ok["epoch"] > 0]
        if skipped or late.empty:
            claims.append(claim_row(GUR_ARI, figure, OVERLAP_CLAIM, statistic, None,
                                    f"≥ {min_overlap:g}", None,
                                    skipped or "no checkpoint after epoch 0", [run]))
            continue
        overlap = float(late["gradient_overlap"].mean())
        claims.append(claim_row(GUR_ARI, figure, OVERLAP_CLAIM,
                                f"{statistic} (k = {int(late['overlap_k'].iloc[0])})", overlap,
                                f"≥ {min_overlap:g}", overlap >= min_overlap, runs=[run]))
    return claims


def transient_curvature_claim(rows: pd.DataFrame, run: str, skipped: str, min_peak_drop: float
                              ) -> dict:
    """Fort & Ganguli 2019 on one minibatch run (``rows``: its finished checkpoints): the drop
    1 − λ_max(final) / max λ_max, required ≥ ``min_peak_drop`` with the peak strictly between the
    first and the last checkpoint; fewer than 3 checkpoints is inconclusive."""
    statistic = "1 − final λ_max / peak λ_max (peak strictly inside training)"
    threshold = f"≥ {min_peak_drop:g}"
    if skipped or len(rows) < 3:
        return claim_row(FORT_GANGULI, FIGURE_ALONG, TRANSIENT_CLAIM, statistic, None, threshold,
                         None, skipped or "fewer than 3 checkpoints", [run])
    ordered = rows.sort_values("epoch")
    peak = int(ordered["lambda_max"].to_numpy().argmax())
    drop = 1.0 - float(ordered["lambda_max"].iloc[-1] / ordered["lambda_max"].iloc[peak])
    epoch = int(ordered["epoch"].iloc[peak])
    inside = 0 < peak < len(ordered) - 1
    reason = "" if inside else (f"λ_max is largest at the {'first' if peak == 0 else 'last'} "
                                f"checkpoint (epoch {epoch})")
    return claim_row(FORT_GANGULI, FIGURE_ALONG, TRANSIENT_CLAIM,
                     f"{statistic}; peak at epoch {epoch}", drop, threshold,
                     inside and drop >= min_peak_drop, reason, [run])


def _skipped_note(statuses) -> str:
    skipped = sorted({status for status in statuses if status != "ok"})
    return f"  [{'; '.join(skipped)}]" if skipped else ""


def _title(claims: pd.DataFrame, statuses) -> str:
    """The claim rows, then the skipped runs on a line of their own."""
    note = _skipped_note(statuses).strip()
    return claims_title(claims) + (f"\n{note}" if note else "")


def _run_label(group: str, batch_size) -> str:
    return f"{group} (batch {int(batch_size)})"


def _legend_below(figure: plt.Figure, handles: list, columns: int) -> float:
    """One legend for the figure below its axes; returns the height it needs (inches)."""
    figure.legend(handles=handles, loc="lower center", ncol=columns, frameon=False,
                  bbox_to_anchor=(0.5, 0.0))
    return 0.2 + 0.17 * -(-len(handles) // columns)


def plot_hessian_spectrum(measurements: dict[str, tuple[dict, dict]], table: pd.DataFrame
                          ) -> plt.Figure:
    """Three panels: SLQ eigenvalue densities of H per run (log density on a symlog eigenvalue
    axis, each run its own line style so that none hides another), the top-k eigenvalues of H
    (filled) and G (open) per run against their rank, and the outlier counts of H and G per run
    against the number of classes C (dashed line); every claim row and skipped run in the title.
    ``table`` from ``hessian_spectrum_table``."""
    use_style()
    figure, axes = plt.subplots(1, 3, figsize=(13, 4.2))
    colours = dict(zip(measurements, sns.color_palette("colorblind", len(measurements))))
    styles = dict(zip(measurements, ["-", "--", "-.", ":"] * len(measurements)))
    ok = {run: m for run, m in measurements.items() if m[1]["status"] == "ok"}
    runs = table[(table["run"] != "claim") & (table["status"] == "ok")]
    handles = []
    for run, (arrays, attrs) in ok.items():
        label = _run_label(attrs["group"], attrs["batch_size"])
        density = np.maximum(arrays["density"], 1e-12)
        axes[0].plot(arrays["density_grid"], density, color=colours[run], ls=styles[run], lw=1.3,
                     alpha=0.85, label=label)
        rank = np.arange(1, len(arrays["hessian_top"]) + 1)
        axes[1].plot(rank, arrays["hessian_top"], "o-", color=colours[run], ms=4, label=f"{label}: H")
        axes[1].plot(rank, arrays["gauss_newton_top"], "o", color=colours[run], ms=8,
                     mfc="none", label=f"{label}: G")
        handles.append(Line2D([], [], color=colours[run], ls=styles[run], marker="o", ms=4,
                              label=label))
    axes[0].set_yscale("log")
    floor = max((m[0]["density"].max() for m in ok.values()), default=1.0) * 1e-6
    axes[0].set_ylim(bottom=floor)
    extent = max((np.abs(m[0]["density_grid"]).max() for m in ok.values()), default=1.0)
    axes[0].set_xscale("symlog", linthresh=extent * 1e-3)
    axes[0].set(xlabel="eigenvalue of H (symlog)", ylabel="density (SLQ)",
                title="Hessian spectral density")
    log_axis(axes[1], "y", np.concatenate([m[0]["hessian_top"] for m in ok.values()])
             if ok else [1.0])
    axes[1].set(xlabel="rank i", ylabel="λ_i", title="Top eigenvalues: H (filled), G (open)")
    axes[1].xaxis.set_major_locator(MaxNLocator(integer=True))
    if not runs.empty:
        counts = runs.melt(id_vars=["group"], value_vars=["outlier_count", "gauss_newton_outlier_count"],
                           var_name="matrix", value_name="outliers")
        counts["matrix"] = counts["matrix"].map({"outlier_count": "H",
                                                 "gauss_newton_outlier_count": "G"})
        sns.barplot(data=counts, x="group", y="outliers", hue="matrix", errorbar=None, ax=axes[2])
        classes = int(runs["num_classes"].iloc[0])
        axes[2].axhline(classes, color="black", ls="--", lw=1, label=f"C = {classes}")
        axes[2].legend()
    axes[2].set(xlabel="run", ylabel="outlier eigenvalues",
                title="Outliers (above the largest log-gap)")
    bottom = _legend_below(figure, handles, max(1, len(handles))) if handles else 0.0
    add_title(figure, _title(table, table["status"].dropna()), bottom)
    return figure


def plot_curvature_along_training(table: pd.DataFrame) -> plt.Figure:
    """λ_max (with the dashed stability threshold 2(1 + β)/η of full-batch runs), Tr H and the
    gradient overlap with the top-k Hessian eigenspace (dotted: the top eigenvector alone) against
    the epoch (symlog axis), one colour per run, one legend below the panels; the claim rows and
    skipped runs in the title. ``table`` from ``curvature_along_training_table``."""
    use_style()
    figure, axes = plt.subplots(1, 3, figsize=(13, 4.2))
    claims = table[table["run"] == "claim"]
    table = table[table["run"] != "claim"]
    ok = table[table["status"] == "ok"].sort_values(["run", "epoch"])
    colours = dict(zip(ok["run"].unique(), sns.color_palette("colorblind", ok["run"].nunique())))
    handles = []
    for run, rows in ok.groupby("run", sort=False):
        first = rows.iloc[0]
        label = _run_label(first["group"], first["batch_size"])
        for ax, column in zip(axes, ("lambda_max", "trace", "gradient_overlap")):
            ax.plot(rows["epoch"], rows[column], "o-", ms=3, color=colours[run], label=label)
        axes[2].plot(rows["epoch"], rows["gradient_overlap_top1"], "x:", ms=3, color=colours[run],
                     label=f"{label}, k = 1")
        handles.append(Line2D([], [], color=colours[run], marker="o", ms=3, label=label))
        if rows["full_batch"].astype(bool).all():
            axes[0].plot(rows["epoch"], rows["stability_threshold"], ls="--", color=colours[run],
                         label=f"2(1+β)/η of {first['group']}")
    overlap_k = int(ok["overlap_k"].iloc[0]) if not ok.empty else None
    handles += [Line2D([], [], color="grey", ls="--", label="2(1+β)/η (full-batch runs)"),
                Line2D([], [], color="grey", ls=":", marker="x", ms=3,
                       label="overlap with the top eigenvector (k = 1)")]
    axes[0].set(ylabel="λ_max", title="Sharpness λ_max")
    axes[0].set_yscale("log")
    axes[1].set(ylabel="Tr H (Hutch++)", title="Hessian trace")
    axes[2].set(ylabel=f"‖P_k g‖² / ‖g‖²  (k = {overlap_k})", ylim=(0, 1.02),
                title="Gradient in the top-k eigenspace")
    for ax in axes:
        ax.set_xscale("symlog", linthresh=1)
        ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.set_xlim(left=0)
        ax.set_xlabel("epoch")
    bottom = _legend_below(figure, handles, min(4, len(handles)))
    add_title(figure, _title(claims, table["status"].dropna()), bottom)
    return figure


def plot_curvature_measurement(arrays: dict[str, np.ndarray], attrs: dict, name: str
                               ) -> plt.Figure:
    """One curvature file (``curvature.CurvatureMeasurement``): the SLQ spectral density of H (log
    density, when measured) and the top eigenvalues of H and, when measured, of the Gauss–Newton
    G against their rank, with λ_max and Tr H in the title."""
    use_style()
    has_density = "density" in arrays
    figure, axes = plt.subplots(1, 2 if has_density else 1, figsize=(9 if has_density else 4.8,
                                                                      3.4), squeeze=False)
    axes = axes[0]
    top_ax = axes[-1]
    rank = np.arange(1, len(arrays["hessian_top"]) + 1)
    top_ax.plot(rank, arrays["hessian_top"], "o-", ms=4, color="C0", label="H")
    if "gauss_newton_top" in arrays:
        top_ax.plot(rank, arrays["gauss_newton_top"], "o", ms=7, mfc="none", color="C1",
                    label="Gauss–Newton G")
    log_axis(top_ax, "y", arrays["hessian_top"])
    top_ax.set(xlabel="rank i", ylabel="eigenvalue λ_i", title="top eigenvalues")
    top_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    top_ax.legend()
    if has_density:
        density = np.maximum(arrays["density"], arrays["density"].max() * 1e-6)
        axes[0].plot(arrays["density_grid"], density, color="C0")
        axes[0].set(yscale="log", xlabel="eigenvalue of H", ylabel="density (SLQ)",
                    title="spectral density")
    add_title(figure, f"{name}: λ_max = {float(attrs['lambda_max']):.4g}, "
                      f"Tr H = {float(attrs['trace']):.4g}, loss = {float(attrs['loss']):.4g} nats")
    return figure
