"""Per-run and per-cell measurements of sweeps (Fort & Jastrzebski 2019 hyper-parameters vs
curvature; Yang et al. 2021 taxonomy): the Hessian's top eigenvalue and trace on a small seeded
training subset, and mixup-augmented inputs for the CKA of the seeds' outputs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .curvature import HessianOperator, hutchinson_trace, lanczos, seeded_subset
from .functional import FunctionalModel


@dataclass(frozen=True)
class Sharpness:
    """λ_max of the Hessian of the mean loss (Lanczos) and Tr H (Hutchinson), on ``n_samples``
    training samples; ``products`` Hessian-vector products in all."""

    lambda_max: float
    trace: float
    n_samples: int
    products: int


def sharpness(fmodel: FunctionalModel, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor, *,
              n_samples: int, lanczos_iterations: int, trace_samples: int,
              seed: int = 0) -> Sharpness:
    """λ_max and Tr H at θ ``(D,)`` on the seeded subset of ``n_samples`` of ``(x, y)``
    (``curvature.seeded_subset``; Yang et al. 2021 use 200 samples, eval-mode batch norm, power
    iteration and Hutchinson with 100 vectors): Lanczos for the top eigenvalue with
    ``lanczos_iterations`` products at most (tolerance 1e-3 relative), Hutchinson with
    ``trace_samples`` Rademacher vectors."""
    x, y = seeded_subset(x, y, n_samples, seed)
    hessian = HessianOperator(fmodel, theta, x, y)
    top = lanczos(hessian, 1, tol=1e-3, max_iter=min(lanczos_iterations, hessian.dim), seed=seed)
    trace = hutchinson_trace(hessian, trace_samples, seed=seed)
    return Sharpness(float(top.eigenvalues[0]), trace.estimate, len(x), hessian.products)


def mixup_inputs(x: torch.Tensor, n_samples: int, alpha: float, seed: int) -> torch.Tensor:
    """``n_samples`` mixup inputs (Zhang et al. 2018) from the rows of ``x`` ``(N, ...)``:
    λ xᵢ + (1 − λ) xⱼ with i, j uniform and λ ~ Beta(α, α), all drawn by
    ``numpy.random.default_rng(seed)`` (Yang et al. 2021: α = 16, 768 samples, for the CKA of the
    seeds' outputs)."""
    if n_samples < 1 or not alpha > 0:
        raise ValueError(f"need n_samples >= 1 and alpha > 0, got {n_samples}, {alpha}")
    rng = np.random.default_rng(seed)
    first = torch.from_numpy(rng.integers(0, x.shape[0], n_samples)).to(x.device)
    second = torch.from_numpy(rng.integers(0, x.shape[0], n_samples)).to(x.device)
    lam = torch.from_numpy(rng.beta(alpha, alpha, n_samples)).to(x)
    lam = lam.reshape(-1, *([1] * (x.dim() - 1)))
    return lam * x[first] + (1 - lam) * x[second]
