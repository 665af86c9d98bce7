"""Landscape figures: filter-normalized 2D surfaces and the PCA trajectory plane (Li et al. 2018),
monotonic linear interpolation (Goodfellow et al. 2015; Lucas et al. 2021) and the walk with SGD
(Xing et al. 2018).

Surface arrays follow ``lossatlas.landscape`` (tomgoldstein/loss-landscape's layout):
``xcoordinates`` (nx,), ``ycoordinates`` (ny,) and metric arrays of shape (ny, nx) with
``values[iy, ix]`` at (xcoordinates[ix], ycoordinates[iy]). Losses are cross-entropy in nats,
accuracies in percent.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.colors import LogNorm, Normalize
from matplotlib.ticker import FormatStrFormatter, MaxNLocator

from . import plain_log_labels, use_style

SURFACE_METRICS = ("train_loss", "train_acc", "test_loss", "test_acc")
METRIC_LABELS = {
    "train_loss": "train loss (nats)",
    "test_loss": "test loss (nats)",
    "train_acc": "train accuracy (%)",
    "test_acc": "test accuracy (%)",
}
SURFACE_LEVEL_COUNT = 16
MAX_PATH_LABELS = 10
MAX_RUN_COLOURS = 24
MLI_CURVE_COLUMNS = ("run", "group", "optimizer", "lr", "norm", "alpha", "split", "loss", "accuracy")
MLI_METRIC_COLUMNS = ("run", "group", "optimizer", "lr", "norm", "batch_size", "status", "delta",
                      "monotonic", "distance", "relative_distance")
WALK_COLUMNS = ("segment", "t", "position", "loss", "is_iterate")


def _require_columns(table: pd.DataFrame, columns: tuple[str, ...], name: str) -> None:
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise ValueError(f"{name} lacks columns {missing}; has {list(table.columns)}")


def _surface_grid(arrays: dict[str, np.ndarray], metric: str, name: str
                  ) -> tuple[np.ndarray, np.ndarray, np.ma.MaskedArray]:
    """Return meshgrids X, Y and the metric Z[iy, ix] (as stored: matplotlib's row = y convention),
    with non-finite values masked."""
    for key in ("xcoordinates", "ycoordinates", metric):
        if key not in arrays:
            raise ValueError(f"surface {name!r} lacks array {key!r}; has {sorted(arrays)}")
    xs = np.asarray(arrays["xcoordinates"], dtype=float)
    ys = np.asarray(arrays["ycoordinates"], dtype=float)
    values = np.asarray(arrays[metric], dtype=float)
    if values.shape != (ys.size, xs.size):
        raise ValueError(f"surface {name!r}: {metric} has shape {values.shape}, expected "
                         f"(len(ycoordinates), len(xcoordinates)) = {(ys.size, xs.size)}")
    grid_x, grid_y = np.meshgrid(xs, ys)
    return grid_x, grid_y, np.ma.masked_invalid(values)


def _value_at_origin(grid_x: np.ndarray, grid_y: np.ndarray, z: np.ma.MaskedArray) -> float:
    """Z at the grid node nearest to (0, 0)."""
    iy, ix = np.unravel_index(np.argmin(grid_x ** 2 + grid_y ** 2), grid_x.shape)
    return float(z[iy, ix])


def _shared_scale(surfaces: list[np.ma.MaskedArray], is_loss: bool
                  ) -> tuple[Normalize, np.ndarray]:
    """Common norm and contour levels for a set of surfaces: log-spaced levels between the
    smallest positive and the largest finite value for losses, linear levels on the shared range
    for accuracies."""
    finite = np.concatenate([z.compressed() for z in surfaces])
    if finite.size == 0:
        raise ValueError("surfaces hold no finite value")
    vmax = float(finite.max())
    if is_loss:
        positive = finite[finite > 0]
        if positive.size == 0:
            raise ValueError("loss surfaces hold no positive value; cannot use a log colour scale")
        vmin = float(positive.min())
        if vmax <= vmin:
            vmax = vmin * 1.01
        return LogNorm(vmin, vmax), np.geomspace(vmin, vmax, SURFACE_LEVEL_COUNT)
    vmin = float(finite.min())
    if vmax <= vmin:
        vmax = vmin + 1e-3
    return Normalize(vmin, vmax), np.linspace(vmin, vmax, SURFACE_LEVEL_COUNT)


def roughness_label(roughness: pd.DataFrame) -> str:
    """Panel label for one solution's roughness (``measure_surfaces`` roughness table, one row per
    direction): the index std(T)/mean(T) of the normalized total variations T (Wu, Du, Chen 2021),
    and, when it is 0, that every profile was monotone on each side of the solution (T = 1), so the
    reader sees why rather than a bare 0."""
    tv = roughness["normalized_tv"].to_numpy(dtype=float)
    index = float(roughness["roughness_index"].iloc[0])
    if np.allclose(tv, 1.0):
        return f"roughness index {index:.3f}: all {tv.size} profiles monotone each side"
    return (f"roughness index {index:.3f} ({int((tv > 1 + 1e-9).sum())} of {tv.size} profiles "
            "not monotone each side)")


def plot_surfaces_2d(surfaces: dict[str, dict[str, np.ndarray]], metric: str = "train_loss"
                     ) -> plt.Figure:
    """Li et al. (2018) filter-normalized 2D surfaces, one row per solution (its label above the
    row): contour lines, filled contour and 3D view of ``metric`` over the plane θ* + x·d₁ + y·d₂,
    with one colour scale and one set of contour levels shared by all solutions (log-spaced for
    losses) and the trained point (0, 0) marked. Each 3D view spans its own surface's range, so
    every basin keeps its shape; the colours stay on the shared scale.

    ``surfaces``: solution label -> arrays with ``xcoordinates`` (nx,), ``ycoordinates`` (ny,) and
    ``metric`` of shape (ny, nx) indexed [iy, ix].
    """
    if metric not in SURFACE_METRICS:
        raise ValueError(f"metric {metric!r} is not one of {SURFACE_METRICS}")
    if not surfaces:
        raise ValueError("surfaces is empty")
    use_style()
    grids = {label: _surface_grid(arrays, metric, label) for label, arrays in surfaces.items()}
    is_loss = metric.endswith("_loss")
    norm, levels = _shared_scale([z for _, _, z in grids.values()], is_loss)
    cmap = "viridis" if is_loss else "viridis_r"
    rows = len(grids)
    figure = plt.figure(figsize=(12.5, 4.1 * rows))
    grid_spec = figure.add_gridspec(rows, 4, width_ratios=[1, 1, 1.25, 0.05], wspace=0.35,
                                    hspace=0.55, left=0.05, right=0.94, top=1 - 0.5 / (4.1 * rows),
                                    bottom=0.35 / rows)
    filled = None
    for row, (label, (grid_x, grid_y, z)) in enumerate(grids.items()):
        lines_ax = figure.add_subplot(grid_spec[row, 0])
        filled_ax = figure.add_subplot(grid_spec[row, 1])
        surface_ax = figure.add_subplot(grid_spec[row, 2], projection="3d", computed_zorder=False)
        z_plot = np.ma.maximum(z, levels[0]) if is_loss else z
        lines = lines_ax.contour(grid_x, grid_y, z_plot, levels=levels, cmap=cmap, norm=norm,
                                 linewidths=0.9)
        lines_ax.clabel(lines, lines.levels[::3], fmt="%.3g", fontsize=6)
        filled = filled_ax.contourf(grid_x, grid_y, z_plot, levels=levels, cmap=cmap, norm=norm,
                                    extend="neither")
        filled_ax.contour(grid_x, grid_y, z_plot, levels=levels, colors="white", linewidths=0.3,
                          alpha=0.6)
        for ax, title in ((lines_ax, "contour lines"), (filled_ax, "filled contour")):
            ax.plot(0, 0, marker="*", color="red", markersize=10, markeredgecolor="white",
                    linestyle="none", label="trained point")
            ax.set_xlabel("x (along d₁)")
            ax.set_ylabel("y (along d₂)")
            ax.set_aspect("equal", adjustable="box")
            ax.xaxis.set_major_locator(MaxNLocator(5))
            ax.set_title(title)
        lines_ax.annotate(label, xy=(0, 1), xycoords="axes fraction", xytext=(0, 16),
                          textcoords="offset points", ha="left", va="bottom", fontsize=9,
                          fontweight="bold")
        surface_ax.plot_surface(grid_x, grid_y, z_plot.filled(np.nan), cmap=cmap, norm=norm,
                                linewidth=0, antialiased=True, rcount=grid_x.shape[0],
                                ccount=grid_x.shape[1])
        surface_ax.scatter([0], [0], [_value_at_origin(grid_x, grid_y, z_plot)], marker="*",
                           color="red", s=80, edgecolors="white", linewidths=0.5,
                           depthshade=False, zorder=10)
        surface_ax.set_zlim(float(z_plot.min()), float(z_plot.max()))
        surface_ax.set_xlabel("x")
        surface_ax.set_ylabel("y")
        surface_ax.set_zlabel(METRIC_LABELS[metric], fontsize=7)
        for axis in (surface_ax.xaxis, surface_ax.yaxis, surface_ax.zaxis):
            axis.set_major_locator(MaxNLocator(5))
        surface_ax.tick_params(labelsize=6, pad=0)
        surface_ax.set_box_aspect(None, zoom=0.85)
        surface_ax.set_title("3D view (its own height range)")
    colorbar_ax = figure.add_subplot(grid_spec[:, 3])
    figure.colorbar(filled, cax=colorbar_ax, label=METRIC_LABELS[metric] + " (shared scale)",
                    ticks=levels[::3], format=FormatStrFormatter("%.3g"))
    return figure


def _label_indices(path: np.ndarray, min_separation: float) -> list[int]:
    """Indices of path points to label: the last and the first, then the others in order, each kept
    only if it lies at least ``min_separation`` (plane units) from every kept one, at most
    ``MAX_PATH_LABELS`` in all; returned in path order."""
    kept: list[int] = []
    for index in [len(path) - 1, 0, *range(1, len(path) - 1)]:
        if len(kept) == MAX_PATH_LABELS:
            break
        if all(np.hypot(*(path[index] - path[other])) >= min_separation for other in kept):
            kept.append(index)
    return sorted(kept)


def plot_trajectory_pca(arrays: dict[str, np.ndarray], path: np.ndarray, path_labels: list[str],
                        explained_variance_ratio: tuple[float, float]) -> plt.Figure:
    """Li et al. (2018) trajectory plot: train-loss contours (log-spaced levels) of the plane spanned by
    the top two PCA directions of {θ_t − θ_T}, centred at θ_T = (0, 0), with the projected
    optimization path (T, 2), its points labelled by ``path_labels`` (first, last and a subset of
    the others spaced apart enough to be readable).
    """
    path = np.asarray(path, dtype=float)
    if path.ndim != 2 or path.shape[1] != 2 or path.shape[0] < 2:
        raise ValueError(f"path must have shape (T >= 2, 2), got {path.shape}")
    if len(path_labels) != path.shape[0]:
        raise ValueError(f"path_labels has {len(path_labels)} entries for {path.shape[0]} path points")
    if len(explained_variance_ratio) != 2 or not all(0 <= r <= 1 for r in explained_variance_ratio):
        raise ValueError(f"explained_variance_ratio must be two numbers in [0, 1], got "
                         f"{explained_variance_ratio}")
    use_style()
    grid_x, grid_y, z = _surface_grid(arrays, "train_loss", "PCA plane")
    norm, levels = _shared_scale([z], is_loss=True)
    z_plot = np.ma.maximum(z, levels[0])
    figure, ax = plt.subplots(figsize=(6.4, 5.2))
    filled = ax.contourf(grid_x, grid_y, z_plot, levels=levels, cmap="viridis", norm=norm, alpha=0.85)
    lines = ax.contour(grid_x, grid_y, z_plot, levels=levels, colors="black", linewidths=0.4,
                       alpha=0.6)
    ax.clabel(lines, lines.levels[::3], fmt="%.3g", fontsize=6)
    ax.plot(path[:, 0], path[:, 1], color="white", lw=2.6)
    ax.plot(path[:, 0], path[:, 1], color="tab:red", lw=1.2, marker="o", markersize=3.5,
            markeredgecolor="white", markeredgewidth=0.5)
    ax.plot(*path[0], marker="o", markersize=9, color="tab:orange", markeredgecolor="black",
            linestyle="none", zorder=4, label=f"start ({path_labels[0]})")
    ax.plot(*path[-1], marker="*", markersize=14, color="tab:red", markeredgecolor="black",
            linestyle="none", zorder=4, label=f"end $\\theta_T$ ({path_labels[-1]})")
    extent = max(np.ptp(grid_x), np.ptp(grid_y))
    for index in _label_indices(path, min_separation=0.06 * extent):
        ax.annotate(path_labels[index], path[index], xytext=(4, 4), textcoords="offset points",
                    fontsize=7, color="black",
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.7})
    ax.set_xlabel(f"PC1 ({100 * explained_variance_ratio[0]:.1f}% of variance)")
    ax.set_ylabel(f"PC2 ({100 * explained_variance_ratio[1]:.1f}% of variance)")
    ax.set_title("Optimization path projected on the top-2 PCA plane", fontsize=10)
    ax.legend(loc="upper right", fontsize=7, framealpha=0.9)
    figure.colorbar(filled, ax=ax, label=METRIC_LABELS["train_loss"], ticks=levels[::3],
                    format=FormatStrFormatter("%.3g"))
    figure.tight_layout()
    return figure


def _non_monotonic_table(ok: pd.DataFrame) -> str:
    """Lines 'optimizer / norm: k/n (p%)' with k non-monotonic runs among n, per (optimizer, norm)
    cell."""
    lines = ["non-monotonic runs", "(optimizer / norm)"]
    for (optimizer, norm), cell in ok.groupby(["optimizer", "norm"], sort=True):
        count = int((~cell["monotonic"]).sum())
        lines.append(f"{optimizer} / {norm}: {count}/{len(cell)} ({100 * count / len(cell):.0f}%)")
    return "\n".join(lines)


def plot_mli(curves: pd.DataFrame, metrics: pd.DataFrame) -> plt.Figure:
    """Monotonic linear interpolation (Goodfellow et al. 2015; Lucas et al. 2021).

    Left: train loss L((1 − t)θ₀ + tθ*) against t per run (one colour per run, per group beyond
    ``MAX_RUN_COLOURS`` runs; log y). Right: largest rise Δ (nats) against ‖θ* − θ₀‖ (hue =
    optimizer, style = norm) with the fraction of non-monotonic
    runs per (optimizer, norm) cell. Runs whose ``status`` is not "ok" are left out of both panels
    and listed in a footnote.
    """
    _require_columns(curves, MLI_CURVE_COLUMNS, "curves")
    _require_columns(metrics, MLI_METRIC_COLUMNS, "metrics")
    use_style()
    ok = metrics[metrics["status"] == "ok"].copy()
    ok["monotonic"] = ok["monotonic"].astype(bool)
    skipped = metrics[metrics["status"] != "ok"]
    ok_curves = curves[curves["run"].isin(set(ok["run"])) & (curves["split"] == "train")]
    figure, (curve_ax, delta_ax) = plt.subplots(1, 2, figsize=(12, 4.4),
                                                gridspec_kw={"width_ratios": [1, 1.15]})
    if ok.empty:
        for ax in (curve_ax, delta_ax):
            ax.text(0.5, 0.5, "no run with status ok", ha="center", va="center",
                    transform=ax.transAxes)
    else:
        hue = "run" if ok["run"].nunique() <= MAX_RUN_COLOURS else "group"
        sns.lineplot(data=ok_curves, x="alpha", y="loss", hue=hue, units="run", estimator=None,
                     lw=1.0, alpha=0.85, ax=curve_ax, palette="colorblind"
                     if ok_curves[hue].nunique() <= 10 else "husl")
        curve_ax.set_yscale("log")
        plain_log_labels(curve_ax.yaxis)
        for alpha in (0.0, 1.0):
            curve_ax.axvline(alpha, color="grey", lw=0.8, ls=":")
        curve_ax.legend(title=hue, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                        ncol=1 if ok_curves[hue].nunique() <= 12 else 2)
        sns.scatterplot(data=ok, x="distance", y="delta", hue="optimizer", style="norm", s=45,
                        ax=delta_ax, palette="colorblind")
        distances = ok["distance"].to_numpy(dtype=float)
        if distances.min() > 0 and distances.max() > 20 * distances.min():
            delta_ax.set_xscale("log")
            plain_log_labels(delta_ax.xaxis)
        delta_ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0))
        delta_ax.text(1.02, 0.0, _non_monotonic_table(ok), transform=delta_ax.transAxes,
                      ha="left", va="bottom", fontsize=7, family="monospace")
    curve_ax.set_xlabel("t on (1 − t) θ₀ + t θ*  (0: init, 1: trained)")
    curve_ax.set_ylabel("train loss (nats)")
    curve_ax.set_title(f"Linear interpolation, {ok['run'].nunique()} runs")
    delta_ax.set_xlabel("‖θ* − θ₀‖ (parameter units)")
    delta_ax.set_ylabel("Δ = largest rise along the line (nats)")
    delta_ax.set_title("Non-monotonicity against distance travelled")
    figure.tight_layout()
    if not skipped.empty:
        note = "; ".join(f"{run} ({status})" for run, status in zip(skipped["run"], skipped["status"]))
        figure.text(0.01, -0.02, f"Excluded: {note}", fontsize=7, ha="left", va="top", wrap=True)
    return figure


def plot_sgd_walk(walk: pd.DataFrame, interior_fraction: float) -> plt.Figure:
    """Xing et al. (2018) "A walk with SGD": train loss on the segments between consecutive iterates
    against the step axis ``position``; iterates as dots, each segment's minimum marked.
    ``interior_fraction`` (fraction of segments whose minimum lies strictly inside) goes in the title.
    """
    _require_columns(walk, WALK_COLUMNS, "walk")
    if walk.empty:
        raise ValueError("walk is empty")
    if not 0 <= interior_fraction <= 1:
        raise ValueError(f"interior_fraction must be in [0, 1], got {interior_fraction}")
    use_style()
    walk = walk.sort_values("position")
    iterates = walk[walk["is_iterate"].astype(bool)].drop_duplicates("position")
    minima = walk.loc[walk.groupby("segment")["loss"].idxmin()]
    segment_count = walk["segment"].nunique()
    figure, ax = plt.subplots(figsize=(10, 3.6))
    ax.plot(walk["position"], walk["loss"], color="tab:blue", lw=0.8, label="loss on segment")
    ax.plot(iterates["position"], iterates["loss"], "o", color="black", markersize=3.5,
            label="iterate θ_t")
    ax.plot(minima["position"], minima["loss"], "v", color="tab:orange", markersize=4,
            label="segment minimum")
    ax.set_xlabel("training step")
    ax.set_ylabel("train loss (nats)")
    ax.set_title(f"A walk with SGD: minimum strictly inside the segment for "
                 f"{100 * interior_fraction:.0f}% of {segment_count} segments", fontsize=10)
    ax.legend(loc="best", fontsize=7, ncol=3)
    figure.tight_layout()
    return figure
