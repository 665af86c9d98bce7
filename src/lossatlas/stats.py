"""Statistics of measured arrays, in numpy only, so that the jobs that turn measurements into tables
and figures do not import torch.

- Long and short directions (``lossatlas.wedge``): a profile's crossing distance
  (``crossing_distance``), a segment's barrier height (``barrier_height``).
- Wedge cuts: the width of the low-loss interval across a ray (``low_loss_width``) and its rank
  correlation with the radius (``width_radius_correlation``).
- Hessian spectra (``lossatlas.curvature``): the number of outlier eigenvalues (``count_outliers``).
"""

from __future__ import annotations

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
