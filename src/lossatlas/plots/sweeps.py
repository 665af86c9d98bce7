"""Sweep figures: hyper-parameters vs curvature along training (Fort & Jastrzebski 2019) and the
taxonomy heat maps and phase map over a load x temperature grid (Yang et al. 2021), with the tidy
tables and claim rows they are drawn from.

Inputs are the rows of the sweep measurements (``measure_sweep_curvature``: one row per run and
epoch; ``measure_sweep_cells``: one row per cell) and ``cells``: the sweep's run groups with their
knob values (``group`` and ``value``, or ``load`` and ``temperature``).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from ..claims import claim_row
from ..taxonomy import PHASE_MEANINGS, PHASES, PhaseThresholds, phase
from . import add_title, claims_title, log_axis, use_style

FORT = "Fort & Jastrzebski 2019"
YANG = "Yang et al. 2021"
# Direction in which a temperature-like knob heats the dynamics: larger lr, smaller batch.
TEMPERATURE_SIGN = {"lr": 1.0, "batch_size": -1.0}
KNOB_LABELS = {"lr": "learning rate", "width": "width", "weight_decay": "L2 (weight decay)",
               "batch_size": "batch size", "train_fraction": "training fraction",
               "label_noise": "label noise"}


def _spearman(x, y) -> float:
    x, y = pd.Series(np.asarray(x, dtype=float)), pd.Series(np.asarray(y, dtype=float))
    keep = x.notna() & y.notna()
    if keep.sum() < 3 or x[keep].nunique() < 2 or y[keep].nunique() < 2:
        return float("nan")
    return float(x[keep].rank().corr(y[keep].rank()))


def _reason(value: float, skipped: str, missing: str) -> str:
    """A claim row's reason: the skipped runs or cells, else why the statistic is missing."""
    return skipped or (missing if np.isnan(value) else "")


def _skipped_runs(rows: pd.DataFrame) -> str:
    """``"N run(s) skipped: RUN, ..."`` for the runs of curvature ``rows`` that are not ``ok``."""
    skipped = sorted(set(rows.loc[rows["status"] != "ok", "run"]))
    return f"{len(skipped)} run(s) skipped: {', '.join(skipped)}" if skipped else ""


def hyperparams_table(curvature: pd.DataFrame, sweeps: dict[str, dict]) -> pd.DataFrame:
    """Tidy table: every curvature row of the one-knob ``sweeps`` (name → ``{"knob", "values"}``,
    ``values`` run group → knob value) with its ``sweep``, ``knob`` and ``value``; then one
    ``run == "final_mean"`` row per sweep value (seed means at the last epoch), and the claim
    rows: for the learning-rate sweep a lower final λ_max at a larger learning rate (Spearman
    ρ < 0); for every knob, λ_max and Tr H moving in the same direction (ρ(knob, λ_max)·ρ(knob,
    Tr H) > 0); across all runs, a lower final λ_max further from the origin (ρ(‖θ‖, λ_max) < 0:
    the wedge model's wider wedges at larger radius)."""
    frames = []
    for name, sweep in sweeps.items():
        values = sweep["values"]
        part = curvature[curvature["group"].isin(values)].copy()
        part["sweep"], part["knob"] = name, sweep["knob"]
        part["value"] = part["group"].map(values)
        frames.append(part)
    runs = pd.concat(frames, ignore_index=True)
    ok = runs[runs["status"] == "ok"]
    finals = ok[ok["epoch"] == ok.groupby("run")["epoch"].transform("max")]
    means = (finals.groupby(["sweep", "knob", "value"])[["lambda_max", "trace", "param_norm",
                                                          "train_loss", "test_error"]]
             .mean().reset_index().assign(run="final_mean"))
    claims = []
    for name, sweep in sweeps.items():
        note = _skipped_runs(runs[runs["sweep"] == name])
        part = means[means["sweep"] == name]
        rho_lambda = _spearman(part["value"], part["lambda_max"])
        rho_trace = _spearman(part["value"], part["trace"])
        knob = sweep["knob"]
        if knob == "lr":
            claims.append(claim_row(
                FORT, "hyperparams_curvature", "larger learning rate -> lower final lambda_max",
                f"Spearman rho(lr, final lambda_max) over {len(part)} learning rates (seed means)",
                rho_lambda, "< 0",
                None if np.isnan(rho_lambda) else rho_lambda < 0,
                reason=_reason(rho_lambda, note, "fewer than 3 learning rates measured")))
        product = rho_lambda * rho_trace
        rhos = f"rho({knob}, lambda_max) = {rho_lambda:+.2f}, rho({knob}, Tr H) = {rho_trace:+.2f}"
        claims.append(claim_row(
            FORT, "hyperparams_curvature",
            f"{KNOB_LABELS[knob]} moves lambda_max and Tr H in the same direction",
            f"rho({knob}, lambda_max) * rho({knob}, Tr H) over {len(part)} values (seed means)",
            product, "> 0",
            None if np.isnan(product) else product > 0,
            reason=_reason(product, note, "fewer than 3 values measured") or rhos))
    rho_radius = _spearman(finals["param_norm"], finals["lambda_max"])
    claims.append(claim_row(
        FORT, "hyperparams_curvature",
        "the knobs reach lower curvature further from the origin (wedge model)",
        f"Spearman rho(|theta|, final lambda_max) over all {len(finals)} runs", rho_radius, "< 0",
        None if np.isnan(rho_radius) else rho_radius < 0,
        reason=_reason(rho_radius, _skipped_runs(runs), "fewer than 3 runs measured")))
    return pd.concat([runs, means, pd.DataFrame(claims)], ignore_index=True)


def plot_hyperparams_curvature(table: pd.DataFrame) -> plt.Figure:
    """One row per sweep: λ_max, Tr H and ‖θ‖ against epoch (seed means, one colour per knob
    value) and the final λ_max and Tr H against the knob value (log scale)."""
    use_style()
    runs = table[~table["run"].isin(["claim", "final_mean"]) & (table["status"] == "ok")]
    means = table[table["run"] == "final_mean"]
    sweeps = list(dict.fromkeys(table.loc[table["run"] == "final_mean", "sweep"]))
    fig, axes = plt.subplots(len(sweeps), 4, figsize=(16, 3.4 * len(sweeps)), squeeze=False)
    for row, name in zip(axes, sweeps):
        part = runs[runs["sweep"] == name]
        knob = part["knob"].iloc[0] if len(part) else name
        order = [f"{v:g}" for v in sorted(part["value"].unique())]
        palette = sns.color_palette("viridis", len(order))
        part = part.assign(value=part["value"].map(lambda v: f"{v:g}"))
        for ax, metric, label in zip(row[:3], ("lambda_max", "trace", "param_norm"),
                                     ("λ_max", "Tr H", "‖θ‖")):
            sns.lineplot(data=part, x="epoch", y=metric, hue="value", hue_order=order,
                         palette=palette, ax=ax,
                         errorbar=None, marker="o", markersize=3)
            ax.set(ylabel=label, title=f"{name}: {label} along training")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            if metric != "param_norm":
                log_axis(ax, "y", part[metric])
            ax.legend(title=KNOB_LABELS[knob])
        final = means[means["sweep"] == name]
        ax = row[3]
        ax.plot(final["value"], final["lambda_max"], "o-", label="λ_max")
        ax.plot(final["value"], final["trace"], "s--", label="Tr H")
        ax.set(xlabel=KNOB_LABELS[knob], ylabel="final value (seed mean)",
               title=f"{name}: final curvature vs {knob}")
        log_axis(ax, "x", final["value"])
        ax.minorticks_off()
        ax.set_xticks(final["value"], [f"{v:g}" for v in final["value"]])
        ax.set_yscale("log")
        ax.legend()
    add_title(fig, claims_title(table))
    return fig


def taxonomy_table(curvature: pd.DataFrame, cells: pd.DataFrame, load_knob: str,
                   temperature_knob: str) -> pd.DataFrame:
    """Tidy table: one ``run == "cell"`` row per grid cell with seed means of the final test
    error, train loss, λ_max and Tr H (their log10), mc of the train error and loss, CKA, seed
    distance and ``status`` (the reason of a skipped or diverged cell), the per-run curvature rows,
    and the claim row: a higher temperature gives a flatter solution (mean over loads of the
    Spearman ρ of temperature and λ_max, temperature signed so that larger lr and smaller batches
    are hotter, < 0)."""
    ok = curvature[curvature["status"] == "ok"]
    per_cell = ok.groupby("group")[["test_error", "train_loss", "lambda_max", "trace"]].mean()
    table = cells.copy().set_index("group")
    for column in per_cell:
        table[column] = per_cell[column]
    runs_status = curvature[curvature["status"] != "ok"].groupby("group")["status"].first()
    for group, status in runs_status.items():
        if group in table.index:
            table.loc[group, "status"] = status
    table["log10_lambda_max"] = np.log10(table["lambda_max"].where(table["lambda_max"] > 0))
    table["log10_trace"] = np.log10(table["trace"].where(table["trace"] > 0))
    table = table.reset_index().assign(run="cell", load_knob=load_knob,
                                       temperature_knob=temperature_knob)
    sign = TEMPERATURE_SIGN[temperature_knob]
    good = table[table["status"] == "ok"]
    rhos = [_spearman(sign * part["temperature"], part["lambda_max"])
            for _, part in good.groupby("load")]
    rho = float(np.nanmean(rhos)) if np.isfinite(rhos).any() else float("nan")
    skipped = table.loc[table["status"] != "ok", "group"].tolist()
    claim = claim_row(
        YANG, "taxonomy_metrics", "a higher temperature gives a flatter solution (lower lambda_max)",
        f"mean over {len(rhos)} loads of Spearman rho(temperature, lambda_max) over "
        f"{good['temperature'].nunique()} temperatures, temperature = "
        f"{'+' if sign > 0 else '-'}{temperature_knob}", rho, "< 0",
        None if np.isnan(rho) else rho < 0,
        reason=_reason(rho, f"skipped cells: {', '.join(skipped)}" if skipped else "",
                       "fewer than 3 temperatures per load"))
    return pd.concat([table, curvature, pd.DataFrame([claim])],
                     ignore_index=True)


TAXONOMY_METRICS = (("test_error", "test error"), ("train_loss", "train loss (nats)"),
                    ("log10_lambda_max", "log10 λ_max"), ("log10_trace", "log10 Tr H"),
                    ("mc_error", "mc (train error; < 0: a barrier)"), ("cka", "CKA"),
                    ("seed_distance", r"seed distance $\|\theta_i - \theta_j\|$"))


def _grid(cells: pd.DataFrame, column: str) -> pd.DataFrame:
    """``column`` as a load (rows, largest first) x temperature table, labels written with %g."""
    grid = cells.pivot(index="load", columns="temperature", values=column).sort_index(ascending=False)
    grid.index = [f"{v:g}" for v in grid.index]
    grid.columns = [f"{v:g}" for v in grid.columns]
    return grid


def _hatch_skipped(ax, cells: pd.DataFrame) -> None:
    """Hatch the cells whose status is not ok and write the first word of the reason."""
    loads = sorted(cells["load"].unique(), reverse=True)
    temperatures = sorted(cells["temperature"].unique())
    for _, cell in cells[cells["status"] != "ok"].iterrows():
        i, j = loads.index(cell["load"]), temperatures.index(cell["temperature"])
        ax.add_patch(plt.Rectangle((j, i), 1, 1, fill=False, hatch="///", edgecolor="grey"))
        reason = "diverged" if "diverged" in str(cell["status"]) else "skipped"
        ax.text(j + 0.5, i + 0.5, reason, ha="center", va="center", fontsize=6)


# Metrics whose sign matters: a diverging colour map centred on 0.
SIGNED_METRICS = ("mc_error",)


def plot_taxonomy_metrics(table: pd.DataFrame) -> plt.Figure:
    """One heat map per metric over load (rows, largest on top) x temperature (columns), each cell
    with its value; mc (negative: a barrier between the seeds; positive: below the straight line)
    on a diverging map centred on 0; the claim rows in the title."""
    use_style()
    cells = table[table["run"] == "cell"]
    load, temperature = cells["load_knob"].iloc[0], cells["temperature_knob"].iloc[0]
    fig, axes = plt.subplots(2, 4, figsize=(18, 8))
    cell_count = cells["load"].nunique() * cells["temperature"].nunique()
    font_size = 9 if cell_count <= 36 else 7
    for ax, (column, label) in zip(axes.flat, TAXONOMY_METRICS):
        grid = _grid(cells, column)
        if column in SIGNED_METRICS:
            limit = float(np.nanmax(np.abs(grid.to_numpy(dtype=float)))) if grid.notna().any().any() \
                else 1.0
            colours = {"cmap": "RdBu_r", "center": 0.0, "vmin": -limit, "vmax": limit}
        else:
            colours = {"cmap": "viridis"}
        sns.heatmap(grid, annot=True, fmt=".2g", ax=ax, annot_kws={"fontsize": font_size},
                    cbar_kws={"shrink": 0.8}, **colours)
        _hatch_skipped(ax, cells)
        ax.set(title=label, xlabel=KNOB_LABELS[temperature], ylabel=KNOB_LABELS[load])
    axes.flat[-1].set_axis_off()
    add_title(fig, claims_title(table))
    return fig


def taxonomy_phase_table(metrics: pd.DataFrame, thresholds: PhaseThresholds) -> pd.DataFrame:
    """Tidy table: the cells of ``taxonomy_table`` with their phase readings
    (``taxonomy.phase``), and the claim rows: the lowest-test-error cell is in phase IV-B (well
    connected, flat, high CKA), and the smallest load is poorly connected (mean mc of its cells
    < −mc_tolerance)."""
    cells = metrics[metrics["run"] == "cell"].copy()
    readings = [phase(row["mc_error"], row["lambda_max"], row["train_loss"], row["cka"],
                      thresholds) if row["status"] == "ok" else phase(None, None, None, None,
                                                                       thresholds)
                for _, row in cells.iterrows()]
    cells = pd.concat([cells.reset_index(drop=True), pd.DataFrame(readings)], axis=1)
    for key, value in vars(thresholds).items():
        cells[key] = value
    good = cells[cells["status"] == "ok"]
    claims = []
    if len(good):
        best = good.loc[good["test_error"].idxmin()]
        claims.append(claim_row(
            YANG, "taxonomy_phases",
            "the best test accuracy lies in phase IV-B (well connected, flat, high CKA)",
            "best cell in IV-B (1 yes, 0 no)", float(best["phase"] == "IV-B"), "= 1",
            best["phase"] == "IV-B",
            f"the best cell, {best['group']}, is in phase {best['phase']}"))
        smallest = good[good["load"] == cells["load"].min()]
        mc = float(smallest["mc_error"].mean()) if len(smallest) else float("nan")
        claims.append(claim_row(
            YANG, "taxonomy_phases", "the smallest load is poorly connected (mc < 0)",
            f"mean mc (train error) at {cells['load_knob'].iloc[0]} = {cells['load'].min():g}",
            mc, f"< -{thresholds.mc_tolerance:g}",
            None if np.isnan(mc) else mc < -thresholds.mc_tolerance,
            reason=_reason(mc, "", "every cell of the smallest load skipped")))
    else:
        for claim in ("the best test accuracy lies in phase IV-B",
                      "the smallest load is poorly connected (mc < 0)"):
            claims.append(claim_row(YANG, "taxonomy_phases", claim, "-", None, "-", None,
                                    reason="every cell skipped or diverged"))
    return pd.concat([cells.assign(run="cell"), pd.DataFrame(claims)], ignore_index=True)


PHASE_COLOURS = {"I": "#d73027", "II": "#fc8d59", "III": "#fee090", "IV-A": "#91bfdb",
                 "IV-B": "#4575b4"}


def plot_taxonomy_phases(table: pd.DataFrame, thresholds: PhaseThresholds) -> plt.Figure:
    """The phase map over load x temperature (colour: phase; text: connectivity / sharpness /
    fit / CKA reading of the cell), a legend defining every phase with its number of cells (a
    phase no cell reaches says so), and the claim rows and thresholds in the title."""
    use_style()
    cells = table[table["run"] == "cell"].copy()
    load, temperature = cells["load_knob"].iloc[0], cells["temperature_knob"].iloc[0]
    codes = {name: index for index, name in enumerate(PHASES)}
    cells["phase_code"] = cells["phase"].map(codes)
    grid = _grid(cells, "phase_code")
    fig, ax = plt.subplots(figsize=(10, 6.5))
    cmap = ListedColormap([PHASE_COLOURS[p] for p in PHASES])
    sns.heatmap(grid, cmap=cmap, vmin=-0.5, vmax=len(PHASES) - 0.5, cbar=False, ax=ax,
                linewidths=0.5, linecolor="white")
    loads = sorted(cells["load"].unique(), reverse=True)
    temperatures = sorted(cells["temperature"].unique())
    font_size = 8 if len(loads) * len(temperatures) <= 36 else 6
    for _, cell in cells.iterrows():
        i, j = loads.index(cell["load"]), temperatures.index(cell["temperature"])
        text = (f"{cell['phase']}\n{cell['connectivity']}, {cell['sharpness']}\n"
                f"{cell['fit']}, CKA {cell['similarity']}" if cell["status"] == "ok"
                else "skipped")
        ax.text(j + 0.5, i + 0.5, text, ha="center", va="center", fontsize=font_size)
    _hatch_skipped(ax, cells)
    ax.set(xlabel=KNOB_LABELS[temperature], ylabel=KNOB_LABELS[load])
    counts = cells["phase"].value_counts()
    ax.legend(handles=[Patch(color=PHASE_COLOURS[p], label=f"{p}: {PHASE_MEANINGS[p]} — "
                             + (f"{counts[p]} cell(s)" if counts.get(p, 0) else "no cell"))
                       for p in PHASES],
              bbox_to_anchor=(0.5, -0.12), loc="upper center", title="phase (Yang et al. 2021)",
              ncol=2, frameon=False)
    stated = (f"well connected: |mc| ≤ {thresholds.mc_tolerance:g}; sharp: λ_max > "
              f"{thresholds.sharpness_threshold:g}; under-fit: train loss > "
              f"{thresholds.train_loss_threshold:g} nats; high CKA: > {thresholds.cka_threshold:g}")
    add_title(fig, f"{claims_title(table)}\n{stated}", bottom_inches=1.0)
    return fig
