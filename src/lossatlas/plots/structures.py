"""Low-loss structure figures: mode-connecting curves (Garipov et al. 2018; Yang et al. 2021's mc),
the low-loss complex through N solutions (Fort & Jastrzebski 2019; Benton et al. 2021) and
ensembles (Fort, Hu & Lakshminarayanan 2019), with the tidy tables and claim rows they are drawn
from.

A measurement is ``(arrays, attrs)`` as ``io.read_h5`` returns a file of
``measure_mode_connectivity``, ``measure_low_loss_subspace`` or ``measure_ensembles`` (list and
dict attributes are JSON strings); losses in nats, errors and accuracies fractions in [0, 1].
"""

from __future__ import annotations


import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import MaxNLocator

from ..claims import claim_row
from . import add_title, claims_title, json_attr, plain_log_labels, show_skipped, use_style
from ..stats import ensemble_accuracy, linear_barrier, mode_connectivity, pairwise_disagreement

CURVE_WORK = "Garipov et al. 2018; Draxler et al. 2018"
CURVE_CLAIM = "a trained curve connects independent solutions with a barrier far below the " \
              "straight line's"
COMPLEX_WORK = "Fort & Jastrzebski 2019; Benton et al. 2021"
COMPLEX_CLAIM = "a low-loss structure contains all N solutions while their linear simplex has a " \
                "barrier"
ENSEMBLE_WORK = "Fort, Hu & Lakshminarayanan 2019; Fort & Jastrzebski 2019"
ENSEMBLE_CLAIM = "independent solutions are more diverse and ensemble better than related " \
                 "solutions at equal K"
# A plane thinner than this fraction of its length is drawn stretched, not to scale.
MIN_EQUAL_ASPECT = 0.2
PATH_COLOURS = {"line": "0.3", "bezier": "C0", "polychain": "C1"}
KIND_COLOURS = dict(zip(("independent", "complex simplex", "snapshots", "perturbations"),
                        sns.color_palette("colorblind", 4)))


# --- mode connectivity ---------------------------------------------------------------------------


def mode_connectivity_table(arrays: dict[str, np.ndarray], attrs: dict,
                            barrier_ratio: float) -> pd.DataFrame:
    """One row per (pair, path): the barrier of the train loss above the linear interpolation of
    its ends (``linear_barrier``), Yang et al.'s mc on train error and on train loss, max train
    loss and error, test error at the midpoint; a skipped pair gets one row with its status;
    then the claim row: mean over pairs of (curve barrier / line barrier) for each curve kind
    below ``barrier_ratio`` (inconclusive when no pair was measured or a line has no barrier)."""
    pairs, statuses = json_attr(attrs, "pair_runs"), json_attr(attrs, "pair_status")
    paths = json_attr(attrs, "paths")
    ts = arrays["t"]
    rows = []
    for p, (pair, status) in enumerate(zip(pairs, statuses)):
        a, b = pair.split()
        if status != "ok":
            rows.append({"run": f"{a} {b}", "pair": p, "status": status})
            continue
        for k, path in enumerate(paths):
            train_loss = arrays[f"pair{p}_train_loss"][k]
            train_error = arrays[f"pair{p}_train_error"][k]
            test_error = arrays[f"pair{p}_test_error"][k]
            rows.append({
                "run": f"{a} {b}", "pair": p, "status": "ok", "path": path,
                "barrier_train_loss": linear_barrier(ts, train_loss),
                "mc_train_error": mode_connectivity(train_error),
                "mc_train_loss": mode_connectivity(train_loss),
                "max_train_loss": float(train_loss.max()),
                "max_train_error": float(train_error.max()),
                "mid_test_error": float(test_error[len(ts) // 2]),
                "end_train_loss_a": float(train_loss[0]), "end_train_loss_b": float(train_loss[-1]),
                "bn_policy": attrs["bn_policy"], "n_samples_train": attrs["n_samples_train"]})
    table = pd.DataFrame(rows)
    measured = table[table["status"] == "ok"] if "path" in table else table.iloc[0:0]
    threshold = f"< {barrier_ratio:g} for every curve kind"
    if measured.empty:
        claim = claim_row(CURVE_WORK, "mode_connectivity", CURVE_CLAIM,
                          "max over curve kinds of mean(curve barrier / line barrier)", None,
                          threshold, None, reason=statuses[0] if statuses else "no pairs")
    else:
        line = measured[measured["path"] == "line"].set_index("pair")["barrier_train_loss"]
        ratios = []
        for path in paths[1:]:
            curve = measured[measured["path"] == path].set_index("pair")["barrier_train_loss"]
            ratios.append(float((curve / line).mean()))
        worst = max(ratios)
        no_barrier = bool((line <= 0).any())
        measured_note = f"line barrier mean {line.mean():.3g} nats over {len(line)} pair(s)"
        if no_barrier:
            reason = "a straight line between two solutions has no barrier"
        elif worst >= barrier_ratio:
            reason = f"a curve keeps {worst:.3g} of the line's barrier; {measured_note}"
        else:
            reason = measured_note
        claim = claim_row(CURVE_WORK, "mode_connectivity", CURVE_CLAIM,
                          "max over curve kinds of mean(curve barrier / line barrier)", worst,
                          threshold, None if no_barrier else worst < barrier_ratio, reason)
    return pd.concat([table, pd.DataFrame([claim])], ignore_index=True)


def plot_mode_connectivity(arrays: dict[str, np.ndarray], attrs: dict,
                           table: pd.DataFrame) -> plt.Figure:
    """Train loss and test error along the line and each curve (every pair; the first solid), and
    the train-loss plane through (θ_a, bend, θ_b) of the first measured pair with the paths."""
    use_style()
    paths, statuses = json_attr(attrs, "paths"), json_attr(attrs, "pair_status")
    measured = [p for p, status in enumerate(statuses) if status == "ok"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    ts = arrays["t"]
    for rank, p in enumerate(measured):
        for k, path in enumerate(paths):
            style = {"color": PATH_COLOURS.get(path, f"C{k}"), "alpha": 1.0 if rank == 0 else 0.4,
                     "label": path if rank == 0 else None}
            axes[0].plot(ts, arrays[f"pair{p}_train_loss"][k], **style)
            axes[1].plot(ts, arrays[f"pair{p}_test_error"][k], **style)
    axes[0].set(xlabel="t (0: first solution, 1: second)", ylabel="train loss (nats)",
                yscale="log", title=f"Train loss along the paths ({len(measured)} pairs)")
    plain_log_labels(axes[0].yaxis)
    axes[1].set(xlabel="t (0: first solution, 1: second)", ylabel="test error",
                title="Test error along the paths")
    for ax in axes[:2]:
        ax.legend()
    if measured:
        p = measured[0]
        xs, ys = arrays[f"pair{p}_xcoordinates"], arrays[f"pair{p}_ycoordinates"]
        loss = arrays[f"pair{p}_plane_train_loss"]
        levels = np.geomspace(max(loss.min(), 1e-4), loss.max(), 15)
        contour = axes[2].contourf(xs, ys, loss, levels=levels, cmap="viridis",
                                   norm=plt.matplotlib.colors.LogNorm())
        fig.colorbar(contour, ax=axes[2], label="train loss (nats)", ticks=levels[::2],
                     format="%.3g")
        for k, path in enumerate(paths):
            xy = arrays[f"pair{p}_plane_paths"][k]
            axes[2].plot(xy[:, 0], xy[:, 1], color="white" if path == "line" else
                         PATH_COLOURS.get(path, f"C{k}"), lw=1.5, label=path)
        corners = arrays[f"pair{p}_plane_corners"]
        axes[2].scatter(corners[[0, 2], 0], corners[[0, 2], 1], color="red", zorder=3)
        pair_a, pair_b = json_attr(attrs, "pair_runs")[p].split()
        for corner, name in zip(corners[[0, 2]], (pair_a, pair_b)):
            axes[2].annotate(name, corner, xytext=(0, 7), textcoords="offset points",
                             ha="center", fontsize=7, color="white")
        axes[2].set(xlabel=f"distance along the bend − {pair_a} (parameter units)",
                    ylabel="orthogonal distance (parameter units)",
                    title=f"plane through {pair_a}, the {attrs['plane_bend']} bend, {pair_b}")
        if np.ptp(ys) >= MIN_EQUAL_ASPECT * np.ptp(xs):
            axes[2].set_aspect("equal", adjustable="box")
        else:
            axes[2].set_ylabel("orthogonal distance (parameter units; stretched)")
        axes[2].grid(False)
    add_title(fig, claims_title(table))
    return fig


# --- low-loss complex ----------------------------------------------------------------------------


def low_loss_subspace_table(arrays: dict[str, np.ndarray], attrs: dict,
                            barrier_tolerance: float) -> pd.DataFrame:
    """One row per region (the trained complex, the linear simplex of the solutions, and the edges
    of each): max and mean train loss and error, max test error, and the barrier = max train loss
    − max train loss of the solutions; then the claim row: it holds when the complex's barrier is
    below ``barrier_tolerance`` (nats) and the linear simplex's is above it."""
    if attrs["status"] != "ok":
        claim = claim_row(COMPLEX_WORK, "low_loss_subspace", COMPLEX_CLAIM,
                          "complex barrier (nats)", None, "", None, reason=attrs["status"])
        return pd.DataFrame([{"run": "complex", "status": attrs["status"]}, claim])
    n_modes = int(attrs["n_modes"])
    weights = arrays["complex_weights"]
    at_modes = np.isclose(weights[:, :n_modes].max(1), 1.0)
    mode_loss = float(arrays["complex_train_loss"][at_modes].max())
    rows = []
    for region in ("complex", "hull", "complex_edges", "hull_edges"):
        loss = arrays[f"{region}_train_loss"]
        rows.append({"run": region, "status": "ok", "points": len(loss),
                     "max_train_loss": float(loss.max()), "mean_train_loss": float(loss.mean()),
                     "max_train_error": float(arrays[f"{region}_train_error"].max()),
                     "mean_train_error": float(arrays[f"{region}_train_error"].mean()),
                     "max_test_error": float(arrays[f"{region}_test_error"].max()),
                     "barrier": float(loss.max()) - mode_loss, "max_mode_train_loss": mode_loss,
                     "bn_policy": attrs["bn_policy"], "n_samples_train": attrs["n_samples_train"]})
    table = pd.DataFrame(rows).set_index("run", drop=False)
    complex_barrier = table.loc["complex", "barrier"]
    hull_barrier = table.loc["hull", "barrier"]
    failures = ([f"the complex has a barrier of {complex_barrier:.3g} nats"]
                if complex_barrier >= barrier_tolerance else [])
    if hull_barrier <= barrier_tolerance:
        failures.append("the linear simplex has no barrier")
    claim = claim_row(COMPLEX_WORK, "low_loss_subspace", COMPLEX_CLAIM,
                      "complex barrier (nats)", complex_barrier,
                      f"complex < {barrier_tolerance:g} < linear simplex",
                      complex_barrier < barrier_tolerance < hull_barrier,
                      "; ".join([*failures, f"linear simplex barrier {hull_barrier:.3g} nats"]))
    return pd.concat([table.reset_index(drop=True), pd.DataFrame([claim])], ignore_index=True)


def _vertex_name(vertex: int, runs: list[str], n_modes: int) -> str:
    """A vertex of the complex: a solution's run id, or connector c1, c2, ..."""
    return runs[vertex] if vertex < n_modes else f"connector c{vertex - n_modes + 1}"


def plot_low_loss_subspace(arrays: dict[str, np.ndarray], attrs: dict,
                           table: pd.DataFrame) -> plt.Figure:
    """The three planes (three solutions; two solutions and a connector, twice) on one log colour
    scale with the vertices marked and named, and the train loss along every edge of the complex
    and of the linear simplex; the claim row in the title."""
    use_style()
    fig, axes = plt.subplots(1, 4, figsize=(19, 4.8),
                             gridspec_kw={"width_ratios": [1, 1, 1, 1.1]})
    if attrs["status"] != "ok":
        show_skipped(axes, attrs["status"])
        add_title(fig, claims_title(table))
        return fig
    planes, plane_vertices = json_attr(attrs, "planes"), json_attr(attrs, "plane_vertices")
    runs = json_attr(attrs, "runs")
    losses = [arrays[f"plane{p}_train_loss"] for p in range(len(planes))]
    low = max(min(loss.min() for loss in losses), 1e-4)
    levels = np.geomspace(low, max(loss.max() for loss in losses), 15)
    n_modes = int(attrs["n_modes"])
    for p, vertices in enumerate(plane_vertices):
        ax = axes[p]
        contour = ax.contourf(arrays[f"plane{p}_xcoordinates"], arrays[f"plane{p}_ycoordinates"],
                              losses[p], levels=levels, cmap="viridis",
                              norm=plt.matplotlib.colors.LogNorm())
        corners = arrays[f"plane{p}_corners"]
        names = [_vertex_name(vertex, runs, n_modes) for vertex in vertices]
        for corner, vertex, name in zip(corners, vertices, names):
            is_mode = vertex < n_modes
            ax.scatter(*corner, color="red" if is_mode else "white", marker="o" if is_mode else "*",
                       s=50, zorder=3, edgecolor="black")
            ax.annotate(name, corner, xytext=(0, 7), textcoords="offset points", ha="center",
                        fontsize=7, color="white")
        ax.set(title="plane through " + ", ".join(names), xlabel="distance (parameter units)",
               ylabel="distance (parameter units)")
        ax.set_aspect("equal", adjustable="box")
        ax.grid(False)
    fig.colorbar(contour, ax=axes[len(planes) - 1], label="train loss (nats, all planes)",
                 fraction=0.05, pad=0.03, ticks=levels[::2], format="%.3g")
    ax = axes[3]
    points = int(attrs["edge_points"])
    t = np.linspace(0, 1, points)
    for region, colour in (("complex_edges", "C0"), ("hull_edges", "C3")):
        edges = json_attr(attrs, region)
        profiles = arrays[f"{region}_train_loss"].reshape(len(edges), points)
        for e, profile in enumerate(profiles):
            ax.plot(t, profile, color=colour, alpha=0.7,
                    label=("edges of the trained complex" if region == "complex_edges" else
                           "edges of the linear simplex") if e == 0 else None)
    ax.set(xlabel="t along the edge", ylabel="train loss (nats)", yscale="log",
           title="Loss along every edge")
    plain_log_labels(ax.yaxis)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False)
    add_title(fig, claims_title(table))
    return fig


# --- ensembles -----------------------------------------------------------------------------------


def ensembles_table(arrays: dict[str, np.ndarray], attrs: dict) -> pd.DataFrame:
    """Rows per (kind, K): test accuracy of the ensemble of the first K members; per kind, the mean
    pairwise disagreement of its members; per non-anchor member, its test accuracy and its
    disagreement with the anchor normalized by its error (the diversity–accuracy plane); then the
    claim row: independent solutions have the largest disagreement and the best ensemble
    accuracy at K = members."""
    if attrs["status"] != "ok":
        claim = claim_row(ENSEMBLE_WORK, "ensembles", ENSEMBLE_CLAIM,
                          "independent − best other ensemble accuracy at K = members", None, "",
                          None, reason=attrs["status"])
        return pd.DataFrame([{"run": "ensembles", "status": attrs["status"]}, claim])
    kinds = json_attr(attrs, "kinds")
    probabilities, y = arrays["probabilities"], arrays["y_test"]
    rows = []
    summary = {}
    for k, kind in enumerate(kinds):
        accuracy = ensemble_accuracy(probabilities[k], y)
        disagreement = pairwise_disagreement(probabilities[k])
        summary[kind] = (accuracy[-1], disagreement)
        for size, value in enumerate(accuracy, start=1):
            rows.append({"run": kind, "kind": kind, "row": "ensemble", "members": size,
                         "ensemble_test_acc": value, "pairwise_disagreement": disagreement})
        predictions = probabilities[k].argmax(-1)
        for m in range(1, predictions.shape[0]):
            member_acc = float(arrays["test_acc"][k, m])
            disagree = float((predictions[m] != predictions[0]).mean())
            rows.append({"run": kind, "kind": kind, "row": "member", "member": m,
                         "member_test_acc": member_acc, "member_train_loss":
                         float(arrays["train_loss"][k, m]),
                         "disagreement_with_anchor": disagree,
                         "normalized_disagreement": disagree / max(1 - member_acc, 1e-12),
                         "distance_from_anchor": float(arrays["distance_from_anchor"][k, m])})
    independent_acc, independent_dis = summary["independent"]
    others = {kind: values for kind, values in summary.items() if kind != "independent"}
    margin = independent_acc - max(acc for acc, _ in others.values())
    most_diverse = all(independent_dis > dis for _, dis in others.values())
    failures = [] if margin > 0 else ["another kind ensembles at least as well"]
    if not most_diverse:
        failures.append("another kind's members disagree at least as much")
    disagreements = ", ".join(f"{kind} {dis:.3f}" for kind, (_, dis) in others.items())
    claim = claim_row(ENSEMBLE_WORK, "ensembles", ENSEMBLE_CLAIM,
                      "independent − best other ensemble accuracy at K = members", margin,
                      "> 0, and the independent members' pairwise disagreement above every "
                      "other kind's", margin > 0 and most_diverse,
                      "; ".join([*failures, f"pairwise disagreement: independent "
                                            f"{independent_dis:.3f}, {disagreements}"]))
    table = pd.DataFrame(rows)
    table["status"] = "ok"
    table["bn_policy"] = attrs["bn_policy"]
    return pd.concat([table, pd.DataFrame([claim])], ignore_index=True)


def plot_ensembles(table: pd.DataFrame, attrs: dict) -> plt.Figure:
    """Ensemble test accuracy against K per kind, pairwise disagreement per kind, and the
    diversity–accuracy plane of the members (disagreement with the anchor / member error against
    member accuracy)."""
    use_style()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    if attrs["status"] != "ok":
        show_skipped(axes, attrs["status"])
        add_title(fig, claims_title(table))
        return fig
    ensemble = table[table["row"] == "ensemble"]
    members = table[table["row"] == "member"]
    for kind, rows in ensemble.groupby("kind", sort=False):
        axes[0].plot(rows["members"], rows["ensemble_test_acc"], marker="o",
                     color=KIND_COLOURS.get(kind), label=kind)
    axes[0].set(xlabel="ensemble size K", ylabel="ensemble test accuracy",
                title="Ensemble accuracy (mean of softmax outputs)")
    axes[0].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].legend()
    dis = ensemble.groupby("kind", sort=False)["pairwise_disagreement"].first()
    axes[1].bar(range(len(dis)), dis.values, color=[KIND_COLOURS.get(k) for k in dis.index])
    axes[1].set_xticks(range(len(dis)), dis.index, rotation=20)
    axes[1].set(ylabel="mean pairwise disagreement", title="Prediction disagreement")
    for kind, rows in members.groupby("kind", sort=False):
        axes[2].scatter(rows["member_test_acc"], rows["normalized_disagreement"],
                        color=KIND_COLOURS.get(kind), label=kind)
    axes[2].set(xlabel="member test accuracy",
                ylabel="disagreement with θ* / (1 − accuracy)",
                title="Diversity against accuracy")
    add_title(fig, claims_title(table))
    return fig
