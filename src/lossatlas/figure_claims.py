"""Claim rows (``claims.claim_row``) of the landscape figures and the dataset sanity check, computed
from the tables and arrays those figures are drawn from. Losses in nats, accuracies in [0, 1].
A skipped (diverged) run makes its rows ``inconclusive``, never an exception."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from .claims import claim_row
from .stats import basin_width, end_rise

KESKAR = "Keskar et al. 2017"
LI = "Li et al. 2018"
LUCAS = "Lucas et al. 2021"
XING = "Xing et al. 2018"

# Published test accuracies per dataset and model, and their source: the MNIST-1D paper's MLP
# and CNN (Greydanus 2020, table 1); ResNet-20 on CIFAR-10 (He et al. 2016, table 6: 8.75% error).
PUBLISHED_TEST_ACCURACY = {"mnist1d": {"mlp": 0.68, "cnn1d": 0.94}, "cifar10": {"resnet20": 0.9125}}
PUBLISHED_SOURCE = {"mnist1d": "Greydanus 2020 (MNIST-1D)",
                    "cifar10": "He et al. 2016 (ResNet-20, CIFAR-10)"}


def _skipped(statuses: pd.Series) -> str:
    return "; ".join(sorted({s for s in statuses.dropna() if s != "ok"}))


def lb_sb_claims(table: pd.DataFrame, rise_alpha: float) -> list[dict]:
    """Keskar et al. 2017 on the LB → SB lines (``table`` of ``measure_lb_sb_interpolation``, α = 0
    at LB, 1 at SB, one line per seed): the train loss rises faster outward of LB than of SB
    (ratio of the rises of the seed-mean line over ``rise_alpha`` in α units, > 1), and SB's test
    accuracy exceeds LB's (the gap averaged over every seed's pair; a gap within twice its
    test-set standard error, binomial over the ``n_test`` test samples, is inconclusive)."""
    figure = "lb_sb_interpolation"
    line = table[table["line"] == "lb_to_sb"]
    runs = sorted(set(line["start_run"].dropna()) | set(line["end_run"].dropna()))
    sharp = "the LB solution is sharper along the line than the SB one"
    sharp_stat = (f"rise of train loss over {rise_alpha:g} α outward of LB / outward of SB")
    better = "the SB solution tests better than the LB one"
    better_stat = (f"test accuracy at SB − at LB (mean over {line['start_run'].nunique()} "
                   "seed pair(s))")
    skipped = _skipped(line["status"])
    if skipped or line.empty:
        reason = skipped or "no LB → SB line measured"
        return [claim_row(KESKAR, figure, sharp, sharp_stat, None, "> 1", None, reason, runs),
                claim_row(KESKAR, figure, better, better_stat, None, "> 0", None, reason, runs)]
    mean = line.groupby(["split", "alpha"], as_index=False)[["loss", "accuracy"]].mean()
    train, test = mean[mean["split"] == "train"], mean[mean["split"] == "test"]
    lb_rise = end_rise(train["alpha"], train["loss"], 0.0, -rise_alpha)
    sb_rise = end_rise(train["alpha"], train["loss"], 1.0, rise_alpha)
    if sb_rise <= 0:
        sharp_row = claim_row(KESKAR, figure, sharp, sharp_stat, None, "> 1", None,
                              f"the loss falls outward of SB (rise {sb_rise:.3g} nats)", runs)
    else:
        ratio = lb_rise / sb_rise
        sharp_row = claim_row(KESKAR, figure, sharp, sharp_stat, ratio, "> 1", ratio > 1,
                              runs=runs)
    return [sharp_row, _sb_tests_better(line, better, better_stat, runs)]


def _sb_tests_better(line: pd.DataFrame, claim: str, statistic: str, runs: list[str]) -> dict:
    """Keskar et al.'s generalization gap on every seed's LB → SB line: the mean over seeds of
    acc_test(SB) − acc_test(LB), against twice its standard error from test-set sampling alone
    (binomial variance p(1 − p)/n of each accuracy; the seeds' pairs independent)."""
    gaps, variances = [], []
    for _, seed_line in line[line["split"] == "test"].groupby("start_run"):
        seed_line = seed_line.sort_values("alpha")
        lb, sb = (float(np.interp(alpha, seed_line["alpha"], seed_line["accuracy"]))
                  for alpha in (0.0, 1.0))
        n_test = int(seed_line["n_test"].iloc[0])
        gaps.append(sb - lb)
        variances.append((lb * (1 - lb) + sb * (1 - sb)) / n_test)
    gap = float(np.mean(gaps))
    noise = 2 * float(np.sqrt(np.sum(variances))) / len(gaps)
    statistic = f"{statistic}; test-set noise ±{noise:.2g} (2 standard errors)"
    if abs(gap) <= noise:
        return claim_row(KESKAR, "lb_sb_interpolation", claim, statistic, gap, "> 0", None,
                         f"|{gap:.3g}| is within the test-set noise ±{noise:.2g}", runs)
    return claim_row(KESKAR, "lb_sb_interpolation", claim, statistic, gap, "> 0", gap > 0,
                     runs=runs)


def surface_width_claim(surfaces: dict[str, dict], small_batch: str, large_batch: str,
                        delta: float, kind: str) -> dict:
    """Li et al. 2018: the SB basin is wider than the LB one on the surfaces of one direction
    ``kind`` (``surfaces``: run → arrays of ``surface_2d``, absent when skipped). Width: ``basin_width``
    of the train loss with ``delta``; a width censored at the grid edge is a lower bound, so a
    censored LB width (or a censored SB width not above LB's) is inconclusive."""
    claim = f"the SB basin is wider than the LB one ({kind} directions)"
    statistic = f"mean basin width (loss ≤ min + {delta:g} nats) SB / LB"
    runs = [small_batch, large_batch]
    missing = [run for run in runs if run not in surfaces]
    if missing:
        return claim_row(LI, "surface_2d", claim, statistic, None, "> 1", None,
                         f"skipped: {', '.join(missing)}", runs)
    sb, lb = (basin_width(surfaces[run]["xcoordinates"], surfaces[run]["ycoordinates"],
                          surfaces[run]["train_loss"], delta) for run in runs)
    if lb.mean == 0:
        return claim_row(LI, "surface_2d", claim, statistic, None, "> 1", None,
                         "LB width below the grid step", runs)
    ratio = sb.mean / lb.mean
    if lb.censored.any() or (sb.censored.any() and ratio <= 1):
        return claim_row(LI, "surface_2d", claim, statistic, ratio, "> 1", None,
                         "a width reaches the grid edge (lower bound only)", runs)
    return claim_row(LI, "surface_2d", claim, statistic, ratio, "> 1", ratio > 1, runs=runs)


def trajectory_pca_claim(attrs: dict, min_fraction: float) -> dict:
    """Li et al. 2018: the top-2 PCA components explain most of the path's variance (``attrs`` of
    the ``trajectory_pca`` measurement; explained-variance ratios summed, ≥ ``min_fraction``)."""
    claim = "the optimization path lies in a very low-dimensional space"
    statistic = "variance of the path explained by the top-2 PCA components"
    threshold = f"≥ {min_fraction:g}"
    runs = [attrs["run"]]
    if attrs["status"] != "ok":
        return claim_row(LI, "trajectory_pca", claim, statistic, None, threshold, None,
                         attrs["status"], runs)
    explained = float(sum(json.loads(attrs["explained_variance_ratio"])))
    return claim_row(LI, "trajectory_pca", claim, statistic, explained, threshold,
                     explained >= min_fraction, runs=runs)


def _non_monotonic_fraction(rows: pd.DataFrame) -> float:
    return float((~rows["monotonic"].astype(bool)).mean()) if len(rows) else float("nan")


def mli_claims(metrics: pd.DataFrame, min_monotonic_fraction: float) -> list[dict]:
    """Lucas et al. 2021 on the MLI sweep (``metrics``: one row per run of ``measure_mli_line``):
    most plain-SGD runs (no BN) are monotonic (fraction ≥ ``min_monotonic_fraction``);
    non-monotonic lines are more frequent with Adam than SGD and with BN than without (difference
    of non-monotonic fractions > 0); Δ grows with the distance travelled (Spearman > 0)."""
    figure = "mli"
    ok = metrics[metrics["status"] == "ok"].copy()
    skipped = _skipped(metrics["status"])
    note = f" ({skipped})" if skipped else ""
    rows = []

    def cell(optimizer=None, norm=None):
        selected = ok
        if optimizer is not None:
            selected = selected[selected["optimizer"] == optimizer]
        if norm is not None:
            selected = selected[(selected["norm"] == "batch") == (norm == "batch")]
        return selected

    sgd_plain = cell("sgd", "none")
    claim = "MLI holds for most SGD runs without BN"
    statistic = f"fraction of monotonic lines, SGD without BN ({len(sgd_plain)} runs)"
    threshold = f"≥ {min_monotonic_fraction:g}"
    runs = list(sgd_plain["run"])
    if sgd_plain.empty:
        rows.append(claim_row(LUCAS, figure, claim, statistic, None, threshold, None,
                              "no SGD run without BN" + note, runs))
    else:
        fraction = 1 - _non_monotonic_fraction(sgd_plain)
        rows.append(claim_row(LUCAS, figure, claim, statistic, fraction, threshold,
                              fraction >= min_monotonic_fraction, runs=runs))
    for name, more, less in (("Adam than with SGD", cell("adam"), cell("sgd")),
                             ("BN than without", cell(norm="batch"), cell(norm="none"))):
        claim = f"non-monotonic lines are more frequent with {name}"
        statistic = (f"non-monotonic fraction with {name.replace(' than ', ' − ')} "
                     f"({len(more)} and {len(less)} runs)")
        runs = list(more["run"]) + list(less["run"])
        if more.empty or less.empty:
            rows.append(claim_row(LUCAS, figure, claim, statistic, None, "> 0", None,
                                  "a side of the comparison has no run" + note, runs))
            continue
        difference = _non_monotonic_fraction(more) - _non_monotonic_fraction(less)
        rows.append(claim_row(LUCAS, figure, claim, statistic, difference, "> 0",
                              difference > 0, runs=runs))
    claim = "non-monotonicity grows with the distance travelled"
    statistic = f"Spearman ρ(Δ, ‖θ_T − θ₀‖) over {len(ok)} runs"
    runs = list(ok["run"])
    if len(ok) < 3 or ok["delta"].nunique() < 2:
        rows.append(claim_row(LUCAS, figure, claim, statistic, None, "> 0", None,
                              "fewer than 3 runs or every Δ equal" + note, runs))
    else:
        from scipy.stats import spearmanr

        rho = float(spearmanr(ok["delta"], ok["distance"]).statistic)
        rows.append(claim_row(LUCAS, figure, claim, statistic, rho, "> 0", rho > 0, runs=runs))
    return rows


def sgd_walk_claim(walk: pd.DataFrame, run: str, min_fraction: float) -> dict:
    """Xing et al. 2018: the loss minimum of most segments between consecutive SGD iterates lies
    strictly inside the segment (``walk``: table of ``measure_sgd_walk``)."""
    claim = "SGD bounces between valley walls: segment minima lie strictly inside"
    statistic = "fraction of segments whose minimum is strictly inside"
    threshold = f"≥ {min_fraction:g}"
    skipped = _skipped(walk["status"])
    if skipped:
        return claim_row(XING, "sgd_walk", claim, statistic, None, threshold, None, skipped, [run])
    fraction = float(walk.groupby("segment")["segment_min_interior"].first().astype(bool).mean())
    return claim_row(XING, "sgd_walk", claim, statistic, fraction, threshold,
                     fraction >= min_fraction, runs=[run])


def dataset_claims(dataset: str, results: dict[str, tuple[str, dict]], tolerance: float
                   ) -> list[dict]:
    """Dataset sanity (``PUBLISHED_SOURCE``): each run's final test accuracy is at most ``tolerance``
    below the published one of its model (``results``: model → (run id, ``status.json``)). A run
    far below the reference means the pipeline trains badly."""
    rows = []
    source = PUBLISHED_SOURCE.get(dataset, "published test accuracy")
    for model, (run, status) in results.items():
        claim = f"the {model} trains to about the published test accuracy"
        statistic = f"final test accuracy of {run}"
        reference = PUBLISHED_TEST_ACCURACY.get(dataset, {}).get(model)
        if reference is None:
            rows.append(claim_row(source, "dataset_sanity", claim, statistic, None,
                                  "published reference", None,
                                  f"no published reference for {model} on {dataset}", [run]))
            continue
        threshold = f"≥ {reference:g} − {tolerance:g} (published {reference:g})"
        if status["status"] != "ok":
            rows.append(claim_row(source, "dataset_sanity", claim, statistic, None, threshold,
                                  None, f"skipped: {run} {status['status']}", [run]))
            continue
        accuracy = float(status["test_acc"])
        rows.append(claim_row(source, "dataset_sanity", claim, statistic, accuracy, threshold,
                              accuracy >= reference - tolerance, runs=[run]))
    return rows
