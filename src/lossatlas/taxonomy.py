"""Taxonomy of local and global loss-landscape structure (Yang et al. 2021): similarity of the
seeds' outputs (linear CKA) and the phase of each cell of a load x temperature grid. numpy only.

Phases, from a cell's seed means and the thresholds of the config (every one stated in the
figure's caption): globally *poorly connected* when mc < −mc_tolerance (a barrier between seeds),
*well connected* when |mc| ≤ mc_tolerance, *mc > 0* above it (Yang et al.'s phase III); locally
*sharp* when λ_max > sharpness_threshold, else *flat*; *under-fit* when the train loss >
train_loss_threshold; *high CKA* when CKA > cka_threshold. Yang et al.'s phases read: I poorly
connected and sharp, II poorly connected and flat, III not poorly connected but mc > 0 or sharp
(their phase III is mc > 0, sharp, under-fit), IV-A well connected and flat with low CKA, IV-B well
connected, flat and high CKA (best test accuracy expected there).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

PHASES = ("I", "II", "III", "IV-A", "IV-B")
# What each phase code means, in the words of the claims table's glossary.
PHASE_MEANINGS = {
    "I": "poorly connected (mc < −tolerance) and sharp",
    "II": "poorly connected and flat",
    "III": "not poorly connected, but mc > tolerance or sharp",
    "IV-A": "well connected (|mc| ≤ tolerance), flat, low CKA",
    "IV-B": "well connected, flat, high CKA (where Yang et al. find the best test accuracy)",
}


def _centered(features) -> np.ndarray:
    a = np.asarray(features, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"features must be (n_samples, n_features), got shape {a.shape}")
    return a - a.mean(0, keepdims=True)


def linear_cka(a, b) -> float:
    """Linear centred kernel alignment of two representations of the same n samples, ``a``
    ``(n, p)`` and ``b`` ``(n, q)``: HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) with K = a aᵀ and
    L = b bᵀ after centring every feature, computed as ‖bᵀa‖²_F / (‖aᵀa‖_F ‖bᵀb‖_F) (Kornblith
    et al. 2019). In [0, 1]; invariant to orthogonal transforms and isotropic scaling of either
    side. NaN when a side is constant."""
    a, b = _centered(a), _centered(b)
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"representations of different sample counts: {a.shape[0]} and {b.shape[0]}")
    cross = np.linalg.norm(b.T @ a) ** 2
    norms = np.linalg.norm(a.T @ a) * np.linalg.norm(b.T @ b)
    return float(cross / norms) if norms > 0 else float("nan")


def mean_pairwise_cka(outputs) -> float:
    """Mean linear CKA over the ordered pairs (i ≠ j) of the seeds' outputs ``(S, n, C)``, S ≥ 2
    (Yang et al. 2021; CKA is symmetric, so this is also the mean over unordered pairs)."""
    outputs = list(outputs)
    if len(outputs) < 2:
        raise ValueError("CKA between seeds needs at least two seeds")
    return float(np.mean([linear_cka(outputs[i], outputs[j])
                          for i, j in itertools.permutations(range(len(outputs)), 2)]))


def mean_pairwise_distance(points) -> float:
    """Mean ‖θ_i − θ_j‖ over the unordered pairs of the rows of ``points`` ``(S, D)``, S ≥ 2."""
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] < 2:
        raise ValueError(f"need at least two points (S, D), got shape {p.shape}")
    return float(np.mean([np.linalg.norm(p[i] - p[j])
                          for i, j in itertools.combinations(range(p.shape[0]), 2)]))


@dataclass(frozen=True)
class PhaseThresholds:
    """Every threshold of the phase map (module docstring): ``mc_tolerance`` on mc of the train
    error (fraction), ``sharpness_threshold`` on λ_max, ``train_loss_threshold`` in nats,
    ``cka_threshold`` on the mean CKA."""

    mc_tolerance: float
    sharpness_threshold: float
    train_loss_threshold: float
    cka_threshold: float


def phase(mc: float, lambda_max: float, train_loss: float, cka: float,
          thresholds: PhaseThresholds) -> dict:
    """The phase of one cell and its four readings: ``connectivity`` (poor / well / mc>0),
    ``sharpness`` (sharp / flat), ``fit`` (under-fit / fit), ``similarity`` (high / low CKA) and
    ``phase`` (one of ``PHASES``; None when a metric is missing, NaN)."""
    values = (mc, lambda_max, train_loss, cka)
    if any(v is None or not np.isfinite(v) for v in values):
        return {"connectivity": None, "sharpness": None, "fit": None, "similarity": None,
                "phase": None}
    if mc < -thresholds.mc_tolerance:
        connectivity = "poor"
    elif mc > thresholds.mc_tolerance:
        connectivity = "mc>0"
    else:
        connectivity = "well"
    sharp = lambda_max > thresholds.sharpness_threshold
    high = cka > thresholds.cka_threshold
    if connectivity == "poor":
        name = "I" if sharp else "II"
    elif connectivity == "mc>0" or sharp:
        name = "III"
    else:
        name = "IV-B" if high else "IV-A"
    return {"connectivity": connectivity, "sharpness": "sharp" if sharp else "flat",
            "fit": "under-fit" if train_loss > thresholds.train_loss_threshold else "fit",
            "similarity": "high" if high else "low", "phase": name}


def interpolation_crossing(loads: Mapping[str, float], statuses: Mapping[str, Mapping],
                           max_train_error: float) -> tuple[str, list[str]]:
    """Whether a sweep's load axis crosses the interpolation threshold (Yang et al. 2021 study
    both sides of it): ``loads`` maps each run to its load value, ``statuses`` each run to its
    ``status.json``. A load fits when at least one of its runs (at some temperature) ends with
    train error ≤ ``max_train_error``. Returns (the loads that fit and those that do not, in
    words; the unmet precondition when every load falls on one side)."""
    fit, unfit = set(), set()
    for run, load in loads.items():
        status = statuses.get(run, {})
        ok = status.get("status") == "ok" and status.get("train_acc") is not None
        if ok and 1.0 - float(status["train_acc"]) <= max_train_error:
            fit.add(load)
    unfit = sorted(set(loads.values()) - fit)
    fit = sorted(fit)
    text = (f"load axis: {', '.join(f'{v:g}' for v in fit) or 'none'} fit (train error ≤ "
            f"{100 * max_train_error:g}% in some run), "
            f"{', '.join(f'{v:g}' for v in unfit) or 'none'} do not")
    if fit and unfit:
        return text, []
    side = "every load fits" if fit else "no load fits"
    return text, [f"the load axis does not cross the interpolation threshold ({side})"]
