"""Goldilocks-zone figure (Fort & Scherlis 2019): Tr/‖·‖_F of the full Hessian and of the Hessian
restricted to random subspaces, and the fraction of positive restricted eigenvalues, against the
radius scale of a random init; overlaid, where random-subspace training (the ``subspace_training``
figure) succeeds at each init scale; with the tidy table and claim rows the figure is drawn from.

A measurement is ``(arrays, attrs)`` as ``io.read_h5`` returns the file of ``measure_goldilocks``
(``lossatlas.goldilocks.GoldilocksMeasurement``). The subspace-training table has one row per run
(``kind`` ``subspace`` or ``full``, ``init_scale``, ``dim``, ``status``, ``test_acc``) besides
summary and claim rows.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import NullFormatter

from ..claims import claim_row
from . import add_title, use_style

WORK = "Fort & Scherlis 2019"
FIGURE = "goldilocks"
SHELL_CLAIM = "the restricted Tr/||H||_F is high in a shell of radii (peak inside the radius grid)"
SUCCESS_CLAIM = "subspace training succeeds where the restricted Tr/||H||_F is high"
MIN_SCALES = 3


def overlay_dimension(subspace_runs: pd.DataFrame, dim_full: int, overlay_dim: int | None) -> int:
    """The subspace dimension d whose training success is overlaid: ``overlay_dim`` (it must be a d
    of the runs), or with ``None`` the largest d of the runs below D/10."""
    dims = sorted(int(d) for d in subspace_runs.loc[subspace_runs["kind"] == "subspace", "dim"]
                  .unique())
    if overlay_dim is not None:
        if overlay_dim not in dims:
            raise ValueError(f"figures.goldilocks.overlay_dim={overlay_dim} is not a trained subspace "
                             f"dimension; the subspace-training runs have d in {dims}")
        return overlay_dim
    below = [d for d in dims if d < dim_full / 10]
    if not below:
        raise ValueError(f"no subspace-training d below D/10 = {dim_full / 10:g} (d in {dims}); set "
                         "figures.goldilocks.overlay_dim")
    return below[-1]


def _skip_reason(row: pd.Series) -> str:
    status = str(row["status"])
    return status if status.startswith("skipped") else f"skipped: {row['run']} {status}"


def subspace_success(subspace_runs: pd.DataFrame, dim: int) -> pd.DataFrame:
    """Per init scale α of the subspace-training runs: mean test accuracy of the finished runs at
    subspace dimension ``dim`` and of the full-space baseline at the same α, their ratio
    ``success_fraction``, the number of finished runs of each, and ``status`` (``ok`` or the
    skip reasons of the runs left out)."""
    rows = []
    for scale, runs in subspace_runs.groupby("init_scale"):
        chosen = runs[((runs["kind"] == "subspace") & (runs["dim"] == dim))
                      | (runs["kind"] == "full")]
        ok = chosen[chosen["status"] == "ok"]
        subspace = ok.loc[ok["kind"] == "subspace", "test_acc"]
        baseline = ok.loc[ok["kind"] == "full", "test_acc"]
        skipped = [_skip_reason(row) for _, row in chosen[chosen["status"] != "ok"].iterrows()]
        test_acc = subspace.mean() if len(subspace) else np.nan
        baseline_acc = baseline.mean() if len(baseline) else np.nan
        rows.append({"init_scale": float(scale), "dim": dim, "test_acc": test_acc,
                     "baseline_test_acc": baseline_acc, "success_fraction": test_acc / baseline_acc,
                     "subspace_runs": len(subspace), "baseline_runs": len(baseline),
                     "status": "; ".join(skipped) if skipped else "ok"})
    return pd.DataFrame(rows)


def goldilocks_table(arrays: dict, attrs: dict, subspace_table: pd.DataFrame,
                     overlay_dim: int | None = None) -> pd.DataFrame:
    """Tidy table, one row per observation, ``kind``:

    - ``full_hessian`` (one per radius scale): ‖θ‖ (``radius``), ``loss`` and the Hutchinson
      ``ratio`` / ``trace`` / ``frobenius`` of the full Hessian;
    - ``restricted`` (one per radius scale and subspace): exact Tr/‖·‖_F of AᵀHA (``ratio``,
      ``trace``, ``frobenius``), ``positive_fraction``, ``subspace`` and its ``projection_seed``;
    - ``subspace_success`` (one per init scale α of ``subspace_table``, α in ``radius_scale``):
      the columns of ``subspace_success`` at d = ``overlay_dimension(...)`` and, in ``ratio``, the mean
      restricted ratio interpolated linearly in log radius scale (NaN outside the radius grid);

    then two claim rows: the argmax of the mean restricted ratio over the radius grid lies strictly
    inside it (the row's ``radius_scale`` and ``ratio`` are the argmax and the peak), and the
    Spearman correlation across init scales between the interpolated ratio and the success fraction
    is > 0 (inconclusive with fewer than 3 init scales inside the grid or with skipped runs)."""
    scales = np.asarray(arrays["radius_scales"], dtype=float)
    if np.any(np.diff(scales) <= 0):
        raise ValueError(f"radius scales must increase strictly, got {scales.tolist()}")
    common = {"run": f"init-s{attrs['seed']}", "seed": attrs["seed"]}
    rows = []
    for i, scale in enumerate(scales):
        base = {**common, "radius_scale": scale, "radius": float(arrays["radius"][i])}
        rows.append({**base, "kind": "full_hessian", "loss": float(arrays["loss"][i]),
                     "ratio": float(arrays["full_ratio"][i]),
                     "trace": float(arrays["full_trace"][i]),
                     "frobenius": float(arrays["full_frobenius"][i]),
                     "trace_samples": attrs["trace_samples"]})
        for s, projection_seed in enumerate(np.asarray(arrays["projection_seeds"]).tolist()):
            rows.append({**base, "kind": "restricted", "subspace": s,
                         "projection_seed": projection_seed, "dim": attrs["subspace_dim"],
                         "ratio": float(arrays["restricted_ratio"][i, s]),
                         "trace": float(arrays["restricted_trace"][i, s]),
                         "frobenius": float(arrays["restricted_frobenius"][i, s]),
                         "positive_fraction": float(arrays["positive_fraction"][i, s])})
    mean_ratio = np.asarray(arrays["restricted_ratio"], dtype=float).mean(axis=1)
    subspace_runs = subspace_table[subspace_table["kind"].isin(["subspace", "full"])]
    dim = overlay_dimension(subspace_runs, attrs["dim"], overlay_dim)
    success = subspace_success(subspace_runs, dim)
    inside = (success["init_scale"] >= scales[0]) & (success["init_scale"] <= scales[-1])
    success["ratio"] = np.where(inside, np.interp(np.log(success["init_scale"]), np.log(scales),
                                                  mean_ratio), np.nan)
    success = success.rename(columns={"init_scale": "radius_scale"})
    success.insert(0, "run", "subspace_training")
    success.insert(1, "kind", "subspace_success")
    claims = [_shell_claim(scales, mean_ratio, attrs), _success_claim(success, dim)]
    table = pd.concat([pd.DataFrame(rows), success, pd.DataFrame(claims)], ignore_index=True)
    counts = ["seed", "subspace", "projection_seed", "dim", "trace_samples", "subspace_runs",
              "baseline_runs"]
    return table.astype({column: "Int64" for column in counts})


def _shell_claim(scales: np.ndarray, mean_ratio: np.ndarray, attrs: dict) -> dict:
    peak = int(np.argmax(mean_ratio))
    row = claim_row(WORK, FIGURE, SHELL_CLAIM,
                    f"radius scale of the largest mean Tr/||A^T H A||_F (d={attrs['subspace_dim']}, "
                    f"{attrs['subspaces']} subspaces)", float(scales[peak]),
                    f"strictly inside ({scales[0]:g}, {scales[-1]:g})",
                    bool(0 < peak < len(scales) - 1))
    return {**row, "radius_scale": float(scales[peak]), "ratio": float(mean_ratio[peak])}


def _success_claim(success: pd.DataFrame, dim: int) -> dict:
    usable = success[success["ratio"].notna() & success["success_fraction"].notna()]
    skipped = "; ".join(status for status in success["status"] if status != "ok")
    statistic = (f"Spearman correlation over init scales of the interpolated restricted ratio and "
                 f"test acc(d={dim}) / test acc(full space)")
    reason, value = "", np.nan
    if skipped:
        reason = skipped
    elif len(usable) < MIN_SCALES:
        reason = (f"only {len(usable)} init scale(s) inside the radius grid with subspace and "
                  f"baseline runs (need {MIN_SCALES})")
    else:
        from scipy.stats import spearmanr

        value = float(spearmanr(usable["ratio"], usable["success_fraction"]).statistic)
        if not np.isfinite(value):
            reason = "the ratio or the success fraction is constant across init scales"
    holds = bool(value > 0) if not reason else None
    row = claim_row(WORK, FIGURE, SUCCESS_CLAIM, statistic, value, "> 0", holds, reason)
    return {**row, "dim": dim}


def plot_goldilocks(table: pd.DataFrame, init_radius: float, xavier_radius: float) -> plt.Figure:
    """Three panels against the radius scale r (log axis): (a) Tr/‖H‖_F of the full Hessian and the
    mean over subspaces of Tr/‖AᵀHA‖_F (band: min–max over subspaces), with the subspace-training
    success fraction per init scale on a second axis; (b) the fraction of positive eigenvalues of
    AᵀHA (mean, min–max band); (c) success fraction against the interpolated restricted ratio per
    init scale. Dotted lines mark r = 1 (the default init, ‖θ₀‖ = ``init_radius``) and the Glorot
    radius ``xavier_radius`` / ``init_radius``. ``table`` from ``goldilocks_table``."""
    use_style()
    colours = sns.color_palette("colorblind", 4)
    figure, axes = plt.subplots(1, 3, figsize=(14, 4.0))
    full = table[table["kind"] == "full_hessian"].sort_values("radius_scale")
    restricted = table[table["kind"] == "restricted"].groupby("radius_scale")
    success = table[table["kind"] == "subspace_success"].sort_values("radius_scale")
    claims = table[table["run"] == "claim"].set_index("claim")
    dim = int(table.loc[table["kind"] == "restricted", "dim"].iloc[0])
    subspaces = int(table.loc[table["kind"] == "restricted", "subspace"].max()) + 1
    ax = axes[0]
    ax.plot(full["radius_scale"], full["ratio"], "o-", color=colours[0],
            label="full H (Hutchinson)")
    for ax_, column, colour, label in (
            (ax, "ratio", colours[1], f"AᵀHA, d={dim} (mean of {subspaces})"),
            (axes[1], "positive_fraction", colours[1], f"AᵀHA, d={dim} (mean of {subspaces})")):
        stats = restricted[column].agg(["mean", "min", "max"])
        ax_.plot(stats.index, stats["mean"], "s-", color=colour, label=label)
        ax_.fill_between(stats.index, stats["min"], stats["max"], color=colour, alpha=0.25,
                         label="min–max over subspaces")
    ax.set(xscale="log", xlabel="radius scale r (θ = r θ₀)", ylabel="Tr / ‖·‖_F",
           title="(a) Excess of positive curvature")
    twin = ax.twinx()
    overlay_dim = int(success["dim"].iloc[0]) if len(success) else None
    twin.plot(success["radius_scale"], success["success_fraction"], "D--", color=colours[2],
              label=f"subspace training: test acc(d={overlay_dim}) / full space")
    twin.set_ylabel("subspace-training success", color=colours[2])
    twin.grid(False)
    axes[1].axhline(0.5, color="grey", lw=1, ls="--")
    axes[1].set(xscale="log", xlabel="radius scale r", ylabel="fraction of eigenvalues > 0",
                title="(b) Positive eigenvalues of AᵀHA")
    for ax_ in axes[:2]:
        ax_.set_xticks(full["radius_scale"], [f"{r:g}" for r in full["radius_scale"]], fontsize=7)
        ax_.xaxis.set_minor_formatter(NullFormatter())
        ax_.axvline(1.0, color="black", lw=1, ls=":", label=f"default init, ‖θ₀‖={init_radius:.3g}")
        ax_.axvline(xavier_radius / init_radius, color="purple", lw=1, ls=":",
                    label=f"Glorot radius {xavier_radius:.3g} (r = {xavier_radius / init_radius:.2g})")
    handles = [h for a in (ax, twin) for h in a.get_legend_handles_labels()[0]]
    below = dict(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.17), ncol=2)
    ax.legend(handles, [h.get_label() for h in handles], **below)
    axes[1].legend(**below)
    usable = success[success["ratio"].notna()]
    axes[2].plot(usable["ratio"], usable["success_fraction"], "D", color=colours[2])
    for _, row in usable.iterrows():
        axes[2].annotate(f"init scale {row['radius_scale']:g}",
                         (row["ratio"], row["success_fraction"]), fontsize=7, xytext=(3, 3),
                         textcoords="offset points")
    axes[2].margins(0.15)
    axes[2].set(xlabel="mean Tr/‖AᵀHA‖_F at the init scale (interpolated in log r)",
                ylabel=f"test acc(d={overlay_dim}) / full space",
                title="(c) Success against curvature ratio, per init scale")
    shell, link = claims.loc[SHELL_CLAIM], claims.loc[SUCCESS_CLAIM]
    link_value = (f"Spearman {link['value']:.2f}" if np.isfinite(link["value"])
                  else link["reason"])
    add_title(figure,
              f"{WORK}. Peak of the mean Tr/‖AᵀHA‖_F at r = {shell['radius_scale']:g} "
              f"({shell['ratio']:.2f}): shell {shell['verdict']}\n"
              f"Subspace training succeeds where the ratio is high: {link['verdict']} "
              f"({link_value})")
    return figure
