"""Wedge-model figures (Fort & Jastrzebski 2019): long and short directions from a solution, and 2D
cuts through the origin with the width of the low-loss region along each solution's ray, with the
tidy tables and claim rows they are drawn from.

A measurement is ``(arrays, attrs)`` as ``io.read_h5`` returns a file of
``measure_long_short_directions`` or ``measure_wedge_cuts`` (list and dict attributes are JSON
strings); ``attrs["status"]`` is ``"ok"`` or the reason the measurement was skipped.
"""

from __future__ import annotations


import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.colors import LogNorm
from matplotlib.lines import Line2D
from matplotlib.ticker import FormatStrFormatter

from ..claims import claim_row
from . import add_title, claims_title, json_attr, plain_log_labels, show_skipped, use_style
from ..stats import (DIRECTION_KINDS, barrier_height, crossing_distance, low_loss_width,
                     width_radius_correlation)

WORK = "Fort & Jastrzebski 2019"
LONG_CLAIM = "random directions are long: they cross L(θ_a) + δ much farther out than the top " \
             "Hessian eigenvectors"
BARRIER_CLAIM = "the path toward another solution rises and falls (a barrier between wedges)"
TUNNEL_CLAIM = "the low-loss region widens with distance from the origin (radial tunnels)"
KIND_COLOURS = dict(zip(DIRECTION_KINDS, sns.color_palette("colorblind", 3)))


# --- long and short directions -----------------------------------------------------------------

def long_short_table(arrays: dict[str, np.ndarray], attrs: dict) -> pd.DataFrame:
    """One row per direction (kind, index, target run or Hessian eigenvalue, crossing distance of
    L(θ_a) + δ with its grid bracket and censoring; for the directions toward other solutions
    their distance, their loss and the barrier height of the straight segment), a skip row per
    skipped solution, and the two claim rows: median crossing(random) / median crossing(Hessian) ≥
    ``long_ratio`` (the verdict is taken on the interval the grid brackets the ratio in, which is
    open above when random crossings are censored at t_max: inconclusive when it straddles the
    threshold), and a barrier above max(L(θ_a), L(θ_j)) + δ on every segment θ_a → θ_j."""
    delta, figure = float(attrs["delta"]), "long_short_directions"
    base = {"run": attrs["origin"], "group": attrs["group"]}
    skipped = json_attr(attrs, "skipped")
    rows = [{**base, "kind": DIRECTION_KINDS[1], "target": run, "status": reason}
            for run, reason in skipped.items() if run != attrs["origin"]]
    if attrs["status"] != "ok":
        rows.insert(0, {**base, "status": attrs["status"]})
        reason = f"no measurement: {attrs['status']}"
        claims = [claim_row(WORK, figure, LONG_CLAIM, "median crossing(random) / median "
                            "crossing(Hessian)", None, f">= {attrs['long_ratio']}", None, reason),
                  claim_row(WORK, figure, BARRIER_CLAIM, "smallest barrier height (nats)", None,
                            f"> delta = {delta}", None, reason)]
        return pd.DataFrame(rows + claims)
    distances, kinds, targets = arrays["distances"], json_attr(attrs, "kinds"), json_attr(attrs, "targets")
    origin_loss = float(attrs["origin_loss"])
    threshold = origin_loss + delta
    counters = dict.fromkeys(DIRECTION_KINDS, 0)
    for m, kind in enumerate(kinds):
        index = counters[kind]
        counters[kind] += 1
        crossing = crossing_distance(distances, arrays["losses"][m], threshold)
        row = {**base, "status": "ok", "kind": kind, "index": index,
               "crossing_distance": crossing.distance, "crossing_after": crossing.last_below,
               "censored": crossing.censored, "origin_loss": origin_loss,
               "loss_threshold": threshold,
               "max_distance": float(distances[-1])}
        if kind == DIRECTION_KINDS[1]:
            segment = arrays["segment_losses"][index]
            row.update({"target": targets[index],
                        "target_distance": float(arrays["target_distances"][index]),
                        "target_loss": float(segment[-1]),
                        "segment_max_loss": float(segment[1:-1].max()),
                        "barrier": barrier_height(segment)})
        elif kind == DIRECTION_KINDS[2]:
            row["eigenvalue"] = float(arrays["eigenvalues"][index])
        rows.append(row)
    table = pd.DataFrame(rows).astype({"index": "Int64"})
    ok = table[table["status"] == "ok"]
    random = ok[ok["kind"] == DIRECTION_KINDS[0]]
    hessian = ok[ok["kind"] == DIRECTION_KINDS[2]]
    ratio = float(random["crossing_distance"].median() / hessian["crossing_distance"].median())
    # Each true crossing lies in (crossing_after, crossing_distance] (beyond t_max if censored), and
    # a median is monotone in every entry, so the ratio of the true medians lies in (lower, upper].
    censored = int(random["censored"].sum())
    lower = float(random["crossing_after"].median() / hessian["crossing_distance"].median())
    hessian_after = float(hessian["crossing_after"].median())
    upper = np.inf if censored or hessian_after == 0 else float(
        random["crossing_distance"].median() / hessian_after)
    long_ratio = float(attrs["long_ratio"])
    notes = [f"at the grid's resolution the ratio lies in ({lower:.3g}, {upper:.3g}]"]
    if censored:
        notes.append(f"{censored} of {len(random)} random crossings censored at t_max = "
                     f"{distances[-1]:.3g}: the ratio is a lower bound")
    holds = True if lower >= long_ratio else (False if upper < long_ratio else None)
    reason = "; ".join(notes)
    claims = [claim_row(WORK, "long_short_directions", LONG_CLAIM,
                        "median crossing(random) / median crossing(Hessian)", ratio,
                        f">= {long_ratio:g}", holds, reason)]
    toward = ok[ok["kind"] == DIRECTION_KINDS[1]]
    pairs = [run for run in skipped if run != attrs["origin"]]
    skip_note = f"; skipped: {', '.join(pairs)}" if pairs else ""
    if toward.empty:
        claims.append(claim_row(WORK, figure, BARRIER_CLAIM, "smallest barrier height (nats)", None,
                                f"> delta = {delta:g}", None,
                                "no other solution to walk toward" + skip_note))
    else:
        heights = ", ".join(f"{r['target']} {r['barrier']:.3g}" for _, r in toward.iterrows())
        claims.append(claim_row(WORK, figure, BARRIER_CLAIM,
                                "smallest barrier height max interior L - max(L(θ_a), L(θ_j)) "
                                "(nats)", float(toward["barrier"].min()),
                                f"> delta = {delta:g} for every pair",
                                bool((toward["barrier"] > delta).all()),
                                f"barrier heights (nats): {heights}{skip_note}"))
    return pd.concat([table, pd.DataFrame(claims)], ignore_index=True)


def plot_long_short_directions(arrays: dict[str, np.ndarray], attrs: dict, table: pd.DataFrame
                               ) -> plt.Figure:
    """Three panels: the train loss against the distance t from θ_a (log axes) along every
    direction, coloured by kind, with the other solutions marked (stars) and the threshold
    L(θ_a) + δ (dashed); the crossing distance of every direction by kind (open triangles:
    censored at t_max; bars: medians); and the loss along the straight segments θ_a → θ_j against
    α with their barrier heights. ``table`` from ``long_short_table``."""
    use_style()
    figure, axes = plt.subplots(1, 3, figsize=(14, 4.2), gridspec_kw={"width_ratios": [1.4, 1, 1]})
    if attrs["status"] != "ok":
        show_skipped(axes, attrs["status"])
        add_title(figure, claims_title(table))
        return figure
    distances, kinds = arrays["distances"], json_attr(attrs, "kinds")
    threshold = float(attrs["origin_loss"]) + float(attrs["delta"])
    line_ax, crossing_ax, segment_ax = axes
    for m, kind in enumerate(kinds):
        line_ax.plot(distances[1:], arrays["losses"][m, 1:], color=KIND_COLOURS[kind], lw=0.9,
                     alpha=0.7)
    targets = json_attr(attrs, "targets")
    line_ax.plot(arrays["target_distances"], arrays["segment_losses"][:, -1], "*", ms=11,
                 color=KIND_COLOURS[DIRECTION_KINDS[1]], mec="black", zorder=5)
    line_ax.axhline(threshold, color="black", ls="--", lw=1)
    line_ax.set(xscale="log", yscale="log", xlabel=r"distance from $\theta_a$ (parameter units)",
                ylabel="train loss (nats)",
                title=f"Loss along unit directions from {attrs['origin']}")
    handles = [Line2D([], [], color=KIND_COLOURS[k], label=k) for k in DIRECTION_KINDS]
    handles += [Line2D([], [], marker="*", ls="", color=KIND_COLOURS[DIRECTION_KINDS[1]],
                       mec="black", ms=9, label="other solutions"),
                Line2D([], [], color="black", ls="--",
                       label=f"L($\\theta_a$) + δ = {threshold:.3g} nats")]
    line_ax.legend(handles=handles)

    rows = table[(table["run"] != "claim") & (table["status"] == "ok")]
    rng = np.random.default_rng(0)
    for position, kind in enumerate(DIRECTION_KINDS):
        kind_rows = rows[rows["kind"] == kind]
        if kind_rows.empty:
            continue
        jitter = position + rng.uniform(-0.15, 0.15, len(kind_rows))
        censored = kind_rows["censored"].astype(bool).to_numpy()
        values = kind_rows["crossing_distance"].to_numpy(float)
        crossing_ax.scatter(jitter[~censored], values[~censored], color=KIND_COLOURS[kind], s=16)
        crossing_ax.scatter(jitter[censored], values[censored], marker="^", s=28,
                            facecolors="none", edgecolors=KIND_COLOURS[kind])
        crossing_ax.hlines(np.median(values), position - 0.3, position + 0.3, color="black", lw=1.5)
    crossing_ax.set_xticks(range(len(DIRECTION_KINDS)), DIRECTION_KINDS)
    crossing_ax.set(yscale="log", ylabel=r"distance where the loss crosses L($\theta_a$) + δ",
                    title="Crossing distance (△ censored at t_max; bar: median)")

    for j, run in enumerate(targets):
        segment_ax.plot(arrays["alphas"], arrays["segment_losses"][j], "o-", ms=2.5,
                        color=sns.color_palette("colorblind", len(targets))[j],
                        label=f"→ {run}")
    segment_ax.set(yscale="log", xlabel=r"t on $(1 - t)\,\theta_a + t\,\theta_j$",
                   ylabel="train loss (nats)",
                   title="Straight paths to the other solutions")
    if targets:
        segment_ax.legend()
    for axis in (line_ax.xaxis, line_ax.yaxis, crossing_ax.yaxis, segment_ax.yaxis):
        plain_log_labels(axis)
    skipped = [run for run in json_attr(attrs, "skipped") if run != attrs["origin"]]
    if skipped:
        segment_ax.text(0.02, 0.02, "skipped: " + ", ".join(skipped), fontsize=7,
                        color="firebrick", transform=segment_ax.transAxes)
    add_title(figure, claims_title(table))
    return figure


# --- wedge cuts --------------------------------------------------------------------------------

PLANE_TITLES = {"solutions": r"plane through 0, $\theta_a$, $\theta_b$",
                "init": r"plane through 0, $\theta_{0,a}$, $\theta_a$"}
COLOURBAR_TICKS = 6


def wedge_cuts_table(planes: dict[str, tuple[dict, dict]]) -> pd.DataFrame:
    """One row per (plane, ray, radius scale s): the radius s‖θ‖, the width of the low-loss
    interval across the ray (``low_loss_width`` at threshold L(θ) + δ, with its ends and
    censoring), the loss at s·θ and the ray's Spearman correlation of width with radius; a skip row
    per skipped plane; and the claim row: the mean over rays of that correlation ≥
    ``min_correlation`` (rays of constant width have no correlation and are left out; a shortfall
    with widths censored at the offset range is inconclusive).
    ``planes``: plane name → measurement."""
    rows, any_attrs = [], next(iter(planes.values()))[1]
    delta, minimum = float(any_attrs["delta"]), float(any_attrs["min_correlation"])
    correlations = {}
    for name, (arrays, attrs) in planes.items():
        ray_labels = json_attr(attrs, "ray_labels")
        if attrs["status"] != "ok":
            rows.append({"run": ", ".join(ray_labels), "plane": name, "status": attrs["status"]})
            continue
        for r, run in enumerate(ray_labels):
            reference = float(arrays["ray_reference_loss"][r])
            offsets = arrays["ray_offsets"][r]
            centre = int(np.argmin(np.abs(offsets)))
            ray_rows = []
            for k, scale in enumerate(arrays["ray_scales"]):
                width = low_loss_width(offsets, arrays["ray_losses"][r, k], reference + delta)
                ray_rows.append({
                    "run": run, "plane": name, "status": "ok", "scale": float(scale),
                    "radius": float(scale * arrays["ray_norms"][r]), "width": width.width,
                    "width_left": width.left, "width_right": width.right,
                    "censored": width.censored,
                    "ray_point_loss": float(arrays["ray_losses"][r, k, centre]),
                    "reference_loss": reference, "loss_threshold": reference + delta,
                    "offset_max": float(offsets[-1])})
            rho = width_radius_correlation([row["radius"] for row in ray_rows],
                                           [row["width"] for row in ray_rows])
            correlations[f"{run} in {name}"] = rho
            rows.extend({**row, "spearman": rho} for row in ray_rows)
    table = pd.DataFrame(rows)
    finite = {ray: rho for ray, rho in correlations.items() if np.isfinite(rho)}
    listing = ", ".join(f"{ray} {rho:.3g}" for ray, rho in correlations.items())
    skipped = [f"plane {name} {attrs['status']}" for name, (_, attrs) in planes.items()
               if attrs["status"] != "ok"]
    notes = [f"Spearman per ray: {listing}"] if listing else []
    widths = table[table["status"] == "ok"] if "censored" in table else table.iloc[0:0]
    censored = int(widths["censored"].astype(bool).sum()) if not widths.empty else 0
    if censored:
        notes.append(f"{censored} widths reach the offset range (lower bounds; their ranking "
                     "may be wrong)")
    notes += skipped
    if finite:
        value = float(np.mean(list(finite.values())))
        holds = True if value >= minimum else (None if censored else False)
        claim = claim_row(WORK, "wedge_cuts", TUNNEL_CLAIM,
                          "mean over rays of Spearman(width, radius)", value, f">= {minimum:g}",
                          holds, "; ".join(notes))
    else:
        reason = "no ray has widths that vary with the radius" if correlations else \
            "every plane skipped"
        claim = claim_row(WORK, "wedge_cuts", TUNNEL_CLAIM, "mean over rays of Spearman(width, "
                          "radius)", None, f">= {minimum:g}", None, "; ".join([reason, *notes]))
    return pd.concat([table, pd.DataFrame([claim])], ignore_index=True)


def plot_wedge_cuts(planes: dict[str, tuple[dict, dict]], table: pd.DataFrame) -> plt.Figure:
    """One panel per plane: the train loss on the plane (log colour scale shared by the planes,
    axes in parameter-distance units, equal aspect) with the origin (+), the solutions (★), the
    init (●), each solution's ray (dashed) and its low-loss contour L(θ) + δ (white); and a panel of
    the low-loss width across each ray against the radius s‖θ‖ (open markers: censored at the
    offset range). ``table`` from ``wedge_cuts_table``."""
    use_style()
    figure, axes = plt.subplots(1, len(planes) + 1, figsize=(5 * len(planes) + 4.5, 5.2))
    ok = {name: m for name, m in planes.items() if m[1]["status"] == "ok"}
    losses = [m[0]["train_loss"][np.isfinite(m[0]["train_loss"])] for m in ok.values()]
    norm = None
    if losses:
        values = np.concatenate(losses)
        norm = LogNorm(max(values[values > 0].min(), 1e-6), values.max())
    mesh = None
    for ax, (name, (arrays, attrs)) in zip(axes, planes.items()):
        if attrs["status"] != "ok":
            ax.text(0.5, 0.5, f"{PLANE_TITLES[name]}\n{attrs['status']}", ha="center",
                    va="center", transform=ax.transAxes)
            ax.set_axis_off()
            continue
        xs, ys, z = arrays["xcoordinates"], arrays["ycoordinates"], arrays["train_loss"]
        gx, gy = np.meshgrid(xs, ys)
        mesh = ax.pcolormesh(gx, gy, np.clip(z, norm.vmin, None), norm=norm, cmap="viridis",
                             shading="auto")
        labels, coords = json_attr(attrs, "point_labels"), arrays["point_coordinates"]
        ray_labels = json_attr(attrs, "ray_labels")
        for label, (px, py) in zip(labels, coords):
            marker = "+" if label == "origin" else ("o" if label.startswith("init") else "*")
            ax.plot(px, py, marker, ms=12 if marker == "*" else 8, color="white", mec="black",
                    mew=1.2 if marker == "+" else 0.6)
            ax.annotate(label, (px, py), textcoords="offset points", xytext=(0, 8), ha="center",
                        fontsize=7, color="white")
        scale_max = float(arrays["ray_scales"].max())
        for r, run in enumerate(ray_labels):
            px, py = coords[labels.index(run)]
            ax.plot([0, scale_max * px], [0, scale_max * py], color="white", ls="--", lw=0.8)
            level = float(arrays["ray_reference_loss"][r]) + float(attrs["delta"])
            if z.min() < level < z.max():
                ax.contour(gx, gy, z, levels=[level], colors="white", linewidths=0.8)
        ax.set(xlim=(xs[0], xs[-1]), ylim=(ys[0], ys[-1]), aspect="equal",
               xlabel="e1 (parameter units)", ylabel="e2 (parameter units)",
               title=PLANE_TITLES[name])
        ax.grid(False)
    if mesh is not None:
        colourbar = figure.colorbar(mesh, ax=axes[len(planes) - 1], fraction=0.05, pad=0.03,
                                    label="train loss (nats, log scale; both planes)",
                                    ticks=np.geomspace(norm.vmin, norm.vmax, COLOURBAR_TICKS),
                                    format=FormatStrFormatter("%.3g"))
        colourbar.ax.minorticks_off()
    width_ax = axes[-1]
    rows = table[(table["run"] != "claim") & (table["status"] == "ok")]
    palette = sns.color_palette("colorblind", max(1, rows.groupby(["plane", "run"]).ngroups))
    for colour, ((plane, run), ray) in zip(palette, rows.groupby(["plane", "run"], sort=False)):
        censored = ray["censored"].astype(bool).to_numpy()
        label = f"{run}, {PLANE_TITLES[plane]} (ρ = {ray['spearman'].iloc[0]:.2f})"
        width_ax.plot(ray["radius"], ray["width"], "-", color=colour, label=label)
        width_ax.plot(ray["radius"][~censored], ray["width"][~censored], "o", color=colour)
        width_ax.plot(ray["radius"][censored], ray["width"][censored], "o", mfc="none",
                      color=colour)
    width_ax.set(xlabel="radius s‖θ‖ along the ray (parameter units)",
                 ylabel="low-loss width across the ray (parameter units)",
                 title="Width of L ≤ L(θ) + δ against the radius")
    if not rows.empty:
        width_ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False)
    add_title(figure, claims_title(table))
    return figure
