"""Statistics of measured arrays, in numpy only, so that the jobs that turn measurements into tables
and figures do not import torch.

- Long and short directions (``lossatlas.wedge``): a profile's crossing distance
  (``crossing_distance``), a segment's barrier height (``barrier_height``).
- Wedge cuts: the width of the low-loss interval across a ray (``low_loss_width``) and its rank
  correlation with the radius (``width_radius_correlation``).
- Hessian spectra (``lossatlas.curvature``): the number of outlier eigenvalues (``count_outliers``).
- Paths between solutions and ensembles (``lossatlas.structures``): the barrier above the linear
  interpolation (``linear_barrier``), Yang et al.'s mode connectivity (``mode_connectivity``), the
  distance a profile stays below a threshold (``radius_within``), ensemble accuracy against size
  (``ensemble_accuracy``) and pairwise disagreement (``pairwise_disagreement``).
- Surfaces and lines (claims of ``surface_2d`` and ``lb_sb_interpolation``): the basin width of a
  2D surface (``basin_width``) and the rise of a line profile beyond an end (``end_rise``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

DIRECTION_KINDS = ("random", "toward solution", "hessian")


@dataclass(frozen=True)
class Crossing:
    """Where a loss profile first exceeds a threshold: ``distance`` is the first grid t with loss >
    threshold (the largest t when it never does: ``censored``, so the crossing is beyond it), and
    the crossing lies in (``last_below``, ``distance``] at the grid's resolution."""

    distance: float
    last_below: float
    censored: bool


def crossing_distance(distances, losses, threshold: float) -> Crossing:
    """``Crossing`` of a profile ``losses`` ``(T,)`` on increasing ``distances`` ``(T,)`` starting
    at 0, whose value at t = 0 is at most ``threshold``. A non-finite loss counts as above."""
    t = np.asarray(distances, dtype=np.float64)
    values = np.asarray(losses, dtype=np.float64)
    if t.ndim != 1 or t.shape != values.shape or t.size < 2:
        raise ValueError(f"distances and losses must be 1-D of the same length >= 2, got "
                         f"{t.shape} and {values.shape}")
    if t[0] != 0 or np.any(np.diff(t) <= 0):
        raise ValueError("distances must start at 0 and increase")
    above = ~(values <= threshold)
    if above[0]:
        raise ValueError(f"the loss at t = 0 ({values[0]:.6g}) already exceeds the threshold "
                         f"{threshold:.6g}")
    if not above.any():
        return Crossing(float(t[-1]), float(t[-1]), True)
    first = int(np.argmax(above))
    return Crossing(float(t[first]), float(t[first - 1]), False)


def barrier_height(losses) -> float:
    """max over the interior points of a segment profile ``losses`` ``(P,)`` (P ≥ 3, ends
    included) minus the larger end value: positive when the path rises above both ends."""
    values = np.asarray(losses, dtype=np.float64)
    if values.ndim != 1 or values.size < 3:
        raise ValueError(f"a segment profile needs at least 3 points, got shape {values.shape}")
    return float(values[1:-1].max() - max(values[0], values[-1]))


@dataclass(frozen=True)
class Width:
    """The contiguous low-loss interval [``left``, ``right``] of offsets around w = 0 (grid
    points with loss ≤ threshold), its ``width`` = right − left (0 when the point at w = 0 is
    above: then ``left`` = ``right`` = 0), and ``censored`` when it reaches an end of the grid
    (the true interval is wider)."""

    width: float
    left: float
    right: float
    censored: bool


def low_loss_width(offsets, losses, threshold: float) -> Width:
    """``Width`` of the low-loss interval of a profile ``losses`` ``(W,)`` on increasing
    ``offsets`` ``(W,)`` that contain 0. A non-finite loss counts as above the threshold."""
    w = np.asarray(offsets, dtype=np.float64)
    values = np.asarray(losses, dtype=np.float64)
    if w.ndim != 1 or w.shape != values.shape:
        raise ValueError(f"offsets and losses must be 1-D of the same length, got {w.shape} and "
                         f"{values.shape}")
    if np.any(np.diff(w) <= 0) or not np.any(w == 0):
        raise ValueError("offsets must increase and contain 0")
    centre = int(np.flatnonzero(w == 0)[0])
    below = values <= threshold
    if not below[centre]:
        return Width(0.0, 0.0, 0.0, False)
    left = centre
    while left > 0 and below[left - 1]:
        left -= 1
    right = centre
    while right < w.size - 1 and below[right + 1]:
        right += 1
    return Width(float(w[right] - w[left]), float(w[left]), float(w[right]),
                 left == 0 or right == w.size - 1)


def width_radius_correlation(radii, widths) -> float:
    """Spearman rank correlation of the widths ``(S,)`` of one ray with the radii ``(S,)``; NaN
    when either is constant (no ranking to correlate)."""
    r, w = np.asarray(radii, dtype=np.float64), np.asarray(widths, dtype=np.float64)
    if r.shape != w.shape or r.ndim != 1 or r.size < 2:
        raise ValueError(f"radii and widths must be 1-D of the same length >= 2, got {r.shape} "
                         f"and {w.shape}")
    if np.ptp(r) == 0 or np.ptp(w) == 0:
        return float("nan")
    from scipy.stats import spearmanr

    return float(spearmanr(r, w).statistic)


def count_outliers(eigenvalues) -> int:
    """Number of outlier eigenvalues among the top eigenvalues of a Hessian (Sagun et al. 2017;
    Papyan 2019): sorted descending, the positive ones are split at the largest gap in
    log-eigenvalue, max_i log(λ_i / λ_{i+1}), and the count is the number above the split. Needs the
    top-k to reach into the bulk (k > the expected count, e.g. k > C); with fewer than two positive
    eigenvalues every positive one counts."""
    values = np.asarray(eigenvalues, dtype=np.float64).ravel()
    positive = -np.sort(-values[values > 0])
    if len(positive) < 2:
        return len(positive)
    gaps = np.log(positive[:-1]) - np.log(positive[1:])
    return int(gaps.argmax()) + 1


# --- low-loss structures and ensembles (Garipov et al. 2018; Yang et al. 2021; Fort, Hu &
# Lakshminarayanan 2019) -------------------------------------------------------------------------


def linear_barrier(ts, values) -> float:
    """max over t of v(t) − [(1 − t) v(0) + t v(1)] for a profile ``values`` ``(T,)`` on increasing
    parameters ``ts`` ``(T,)`` from 0 to 1: how far the path rises above the linear interpolation
    of its end values (0 for a path that never does)."""
    t, v = np.asarray(ts, dtype=np.float64), np.asarray(values, dtype=np.float64)
    if t.ndim != 1 or t.shape != v.shape or t.size < 2 or t[0] != 0 or t[-1] != 1:
        raise ValueError(f"need matching profiles on t from 0 to 1, got shapes {t.shape}, {v.shape}")
    return float(max(0.0, np.max(v - ((1 - t) * v[0] + t * v[-1]))))


def mode_connectivity(values) -> float:
    """Yang et al. 2021's mc = ½(v₀ + v₁) − v(t*), t* = argmax_t |v(t) − ½(v₀ + v₁)| over the
    interior points of a profile ``values`` ``(T,)`` whose first and last entries are the ends:
    negative when the path has a barrier (poorly connected), positive when its interior is lower
    than its ends, ≈ 0 when the ends are well connected. (The ends themselves are left out of the
    argmax, so that ends of unequal value on a flat path give mc = 0, not ±|v₀ − v₁|/2.)"""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size < 3:
        raise ValueError(f"a profile needs at least 3 points, got shape {v.shape}")
    mean_end = 0.5 * (v[0] + v[-1])
    interior = v[1:-1]
    return float(mean_end - interior[np.argmax(np.abs(interior - mean_end))])


def ensemble_accuracy(probabilities, y) -> np.ndarray:
    """Test accuracy ``(K,)`` of the ensembles of the first 1, 2, …, K members: the arg-max of the
    mean softmax output over the members, ``probabilities`` ``(K, N, C)``, against labels
    ``y`` ``(N,)``."""
    running = np.cumsum(np.asarray(probabilities, dtype=np.float64), axis=0)
    return (running.argmax(-1) == np.asarray(y)[None]).mean(-1)


def pairwise_disagreement(probabilities) -> float:
    """Mean over pairs of members of the fraction of inputs whose arg-max predictions differ
    (Fort, Hu & Lakshminarayanan 2019), for ``probabilities`` ``(K, N, C)``, K ≥ 2."""
    predictions = np.asarray(probabilities).argmax(-1)
    if predictions.shape[0] < 2:
        raise ValueError("disagreement needs at least 2 members")
    pairs = itertools.combinations(range(predictions.shape[0]), 2)
    return float(np.mean([(predictions[i] != predictions[j]).mean() for i, j in pairs]))


def radius_within(distances, losses, threshold: float) -> float:
    """Largest grid distance t of a profile ``losses`` ``(T,)`` on increasing ``distances`` (from 0)
    up to which every loss stays ≤ ``threshold`` (0 when only t = 0 does; non-finite counts as
    above)."""
    t = np.asarray(distances, dtype=np.float64)
    below = np.isfinite(np.asarray(losses)) & (np.asarray(losses) <= threshold)
    if not below[0]:
        raise ValueError(f"the profile starts above the threshold {threshold}")
    first_above = np.flatnonzero(~below)
    return float(t[-1] if first_above.size == 0 else t[first_above[0] - 1])


# --- basin widths and end rises of surfaces and lines (Li et al. 2018; Keskar et al. 2017) ---------


@dataclass(frozen=True)
class BasinWidth:
    """Width of the low-loss region around a surface's centre node (grid units of the directions):
    ``widths`` ``(4,)`` along the half-axes +x, −x, +y, −y, their ``mean``, and ``censored``
    ``(4,)``: the loss stayed below the level up to the grid edge, so that width is a lower bound."""

    widths: np.ndarray
    censored: np.ndarray
    mean: float


def _crossing(distances: np.ndarray, values: np.ndarray, level: float) -> tuple[float, bool]:
    """First distance at which ``values`` (at increasing ``distances`` from 0) exceed ``level``,
    linearly interpolated between grid points; the last distance and True when they never do."""
    above = np.flatnonzero(values > level)
    if above.size == 0:
        return float(distances[-1]), True
    j = above[0]
    if j == 0:
        return 0.0, False
    fraction = (level - values[j - 1]) / (values[j] - values[j - 1])
    return float(distances[j - 1] + fraction * (distances[j] - distances[j - 1])), False


def basin_width(xcoordinates, ycoordinates, values, delta: float) -> BasinWidth:
    """Width of a 2D surface's basin (Li et al. 2018 compare basins by eye; this is our number):
    along the four half-axes from the grid node nearest to (0, 0), the distance at which the value
    first exceeds the surface minimum + ``delta`` (nats), averaged over the four. ``values`` ``(ny,
    nx)`` indexed ``[iy, ix]`` (``landscape.ORIENTATION_2D``); non-finite values count as above the
    level."""
    xs = np.asarray(xcoordinates, dtype=np.float64)
    ys = np.asarray(ycoordinates, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    if values.shape != (ys.size, xs.size):
        raise ValueError(f"values have shape {values.shape}, expected (len(ycoordinates), "
                         f"len(xcoordinates)) = {(ys.size, xs.size)}")
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        raise ValueError("surface holds no finite value")
    level = float(finite.min()) + delta
    values = np.where(np.isfinite(values), values, np.inf)
    ix, iy = int(np.abs(xs).argmin()), int(np.abs(ys).argmin())
    rays = [(xs[ix:] - xs[ix], values[iy, ix:]), (xs[ix::-1] - xs[ix], values[iy, ix::-1]),
            (ys[iy:] - ys[iy], values[iy:, ix]), (ys[iy::-1] - ys[iy], values[iy::-1, ix])]
    results = [_crossing(np.abs(d), v, level) if d.size > 1 else (0.0, True) for d, v in rays]
    widths = np.array([w for w, _ in results])
    return BasinWidth(widths, np.array([c for _, c in results]), float(widths.mean()))


def end_rise(alphas, losses, end: float, step: float) -> float:
    """Rise of a 1D loss profile from α = ``end`` to α = ``end + step`` (linear interpolation on
    the grid ``alphas``; ``step`` may be negative): the ε-rise of Keskar et al. 2017's line plots,
    outward from a solution sitting at α = ``end``."""
    alphas = np.asarray(alphas, dtype=np.float64)
    losses = np.asarray(losses, dtype=np.float64)
    order = np.argsort(alphas)
    alphas, losses = alphas[order], losses[order]
    target = end + step
    if not alphas[0] <= min(end, target) <= max(end, target) <= alphas[-1]:
        raise ValueError(f"α = {end} and {target} must lie in [{alphas[0]}, {alphas[-1]}]")
    return float(np.interp(target, alphas, losses) - np.interp(end, alphas, losses))
