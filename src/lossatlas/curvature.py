"""Curvature of the training loss at a point θ: Hessian, Gauss–Newton and residual operators, and the
matrix-free algorithms that run on them.

Operators map a batch of vectors ``V`` ``(k, D)`` to ``(k, D)`` and count the vectors they were applied
to in ``products``. They act on the mean loss L(θ) = Σ_c (n_c / N) L_c(θ) over the chunks c of a data
set ``(x, y)`` held on θ's device, L_c the mean loss of ``FunctionalModel.loss`` on chunk c. Without
batch norm in ``bn_mode="batch"`` that is the full-data mean loss whatever the chunk size; with it,
every chunk is normalized with its own statistics (as a training batch of that size would be), so the
operator's ``bn_mode`` and ``chunk_size`` are part of what it measures and callers record both.

- ``HessianOperator``: H v, exact, by one of ``HVP_MODES``: ``"double_backward"`` (one gradient
  with ``create_graph``, then one ``torch.autograd.grad`` of it per vector, as PyHessian does) or
  ``"forward_over_reverse"`` (``jvp`` of ``grad``, batched over the k vectors with ``vmap``); both
  compute the same H v (to float rounding, tested). ``"auto"`` takes double backward on a CPU,
  where it was faster on every measured setting (benchmarks/RESULTS.md), and forward-over-reverse
  on CUDA (one batched pass for k vectors; not measured: no GPU was lent).
- ``GaussNewtonOperator``: G v = (1/N) Σ_i J_iᵀ ∇²ℓ_i J_i v, J_i the Jacobian of the logits of sample
  i, ∇²ℓ = diag(p) − p pᵀ for cross-entropy, 2 I for the sum-over-classes squared error (Sagun et al.
  2017; Papyan 2019). G is symmetric positive semi-definite.
- ``ResidualOperator``: R v = H v − G v.
- ``MatrixOperator``: a dense symmetric matrix, for small problems and checks of the algorithms.

Algorithms (any operator with ``dim``, ``dtype``, ``device`` and ``__call__``): Lanczos with full
reorthogonalization (top-k / bottom-k eigenpairs), power iteration with deflation (as in PyHessian,
Yao et al. 2020), Hutchinson and Hutch++ (Meyer et al. 2021) trace estimators, stochastic Lanczos
quadrature spectral density (Ubaru et al. 2017; Ghorbani et al. 2019), the Tr(H)/‖H‖_F ratio of Fort
& Scherlis 2018, and the overlap of the gradient with the top Hessian eigenspace (Gur-Ari et al. 2018).
Every result records the operator products it used and its wall time in seconds.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Protocol

import torch
from torch.func import grad, jvp, vjp, vmap

from .functional import FunctionalModel

WHICH = ("largest", "smallest")
HVP_MODES = ("auto", "double_backward", "forward_over_reverse")


def hvp_mode_for(requested: str, device: torch.device) -> str:
    """The Hessian-vector-product mode to run on ``device`` (``HVP_MODES``; ``"auto"`` as in the
    module docstring)."""
    if requested not in HVP_MODES:
        raise ValueError(f"unknown hvp_mode {requested!r}; valid: {', '.join(HVP_MODES)}")
    if requested != "auto":
        return requested
    return "forward_over_reverse" if torch.device(device).type == "cuda" else "double_backward"
DENSITY_BROADENING = 3e-4


class LinearOperator(Protocol):
    """A symmetric linear map on R^D applied to batches ``(k, D)``."""

    dim: int
    dtype: torch.dtype
    device: torch.device

    def __call__(self, vectors: torch.Tensor) -> torch.Tensor: ...


def seeded_subset(x: torch.Tensor, y: torch.Tensor, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` samples of ``(x, y)`` drawn without replacement by a generator seeded with ``seed``, in
    their original order."""
    if not 1 <= n <= len(x):
        raise ValueError(f"subset size n={n} must be in [1, {len(x)}] (the data set size)")
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} samples but y has {len(y)}")
    index = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    index = index.to(x.device)
    return x[index], y[index]


def _chunks(x: torch.Tensor, y: torch.Tensor, chunk_size: int | None):
    size = len(x) if chunk_size is None else chunk_size
    for start in range(0, len(x), size):
        yield x[start:start + size], y[start:start + size]


def _check_data(fmodel: FunctionalModel, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                chunk_size: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    if theta.shape != (fmodel.layout.dim,):
        raise ValueError(f"theta has shape {tuple(theta.shape)}, model has D={fmodel.layout.dim}")
    if len(x) == 0 or len(x) != len(y):
        raise ValueError(f"need a non-empty data set with as many labels as inputs, "
                         f"got {len(x)} inputs and {len(y)} labels")
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1 or None, got {chunk_size}")
    return x.to(device=theta.device, dtype=theta.dtype), y.to(theta.device)


def loss_gradient(fmodel: FunctionalModel, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                  chunk_size: int | None = None) -> torch.Tensor:
    """∇L(θ) ``(D,)`` of the mean loss over ``(x, y)``, summed over chunks weighted by chunk size."""
    x, y = _check_data(fmodel, theta, x, y, chunk_size)
    gradient = torch.zeros_like(theta)
    for x_chunk, y_chunk in _chunks(x, y, chunk_size):
        gradient += grad(fmodel.loss)(theta, x_chunk, y_chunk) * (len(x_chunk) / len(x))
    return gradient


def _check_vectors(operator, vectors: torch.Tensor) -> None:
    """Operators take a batch of vectors ``(k, D)``; anything else is an error naming the operator."""
    if vectors.ndim != 2 or vectors.shape[1] != operator.dim:
        raise ValueError(f"{type(operator).__name__} takes vectors of shape (k, {operator.dim}), "
                         f"got {tuple(vectors.shape)}")


class _DataOperator:
    """Shared part of the data operators: data on θ's device, chunking, product count, and the
    Hessian-vector-product mode ``hvp_mode`` (``HVP_MODES``) of the Hessian terms."""

    def __init__(self, fmodel: FunctionalModel, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                 chunk_size: int | None = None, hvp_mode: str = "auto"):
        self.hvp_mode = hvp_mode_for(hvp_mode, theta.device)
        self.x, self.y = _check_data(fmodel, theta, x, y, chunk_size)
        self.fmodel = fmodel
        self.theta = theta.detach()
        self.chunk_size = chunk_size
        self.bn_mode = fmodel.bn_mode
        self.dim = fmodel.layout.dim
        self.dtype = theta.dtype
        self.device = theta.device
        self.products = 0

    def __call__(self, vectors: torch.Tensor) -> torch.Tensor:
        _check_vectors(self, vectors)
        vectors = vectors.to(device=self.device, dtype=self.dtype)
        out = torch.zeros_like(vectors)
        for x_chunk, y_chunk in _chunks(self.x, self.y, self.chunk_size):
            out += self._chunk_product(vectors, x_chunk, y_chunk) * (len(x_chunk) / len(self.x))
        self.products += len(vectors)
        return out

    def _hessian_product(self, vectors, x_chunk, y_chunk):
        if self.hvp_mode == "double_backward":
            return self._double_backward_product(vectors, x_chunk, y_chunk)

        def loss_grad(theta):
            return grad(self.fmodel.loss)(theta, x_chunk, y_chunk)

        return vmap(lambda v: jvp(loss_grad, (self.theta,), (v,))[1])(vectors)

    def _double_backward_product(self, vectors, x_chunk, y_chunk):
        """H V of the chunk's loss: its gradient with ``create_graph``, then one backward pass
        through that graph per vector."""
        with torch.enable_grad():
            theta = self.theta.detach().requires_grad_(True)
            (gradient,) = torch.autograd.grad(self.fmodel.loss(theta, x_chunk, y_chunk), theta,
                                              create_graph=True)
            if not gradient.requires_grad:
                return torch.zeros_like(vectors)
            products = []
            for i, v in enumerate(vectors):
                (product,) = torch.autograd.grad(gradient, theta, v, allow_unused=True,
                                                 retain_graph=i < len(vectors) - 1)
                products.append(torch.zeros_like(v) if product is None else product)
        return torch.stack(products)

    def _gauss_newton_product(self, vectors, x_chunk, y_chunk):
        def logits(theta):
            return self.fmodel.logits(theta, x_chunk)

        z, logits_vjp = vjp(logits, self.theta)
        loss = self.fmodel.loss_name
        probabilities = torch.softmax(z, dim=-1)

        def single(v):
            jv = jvp(logits, (self.theta,), (v,))[1]
            if loss == "cross_entropy":
                hjv = probabilities * jv - probabilities * (probabilities * jv).sum(-1, keepdim=True)
            else:
                hjv = 2.0 * jv
            return logits_vjp(hjv / len(x_chunk))[0]

        return vmap(single)(vectors)


class HessianOperator(_DataOperator):
    """H V ``(k, D)`` of the mean loss, exact, by ``hvp_mode`` (module docstring)."""

    def _chunk_product(self, vectors, x_chunk, y_chunk):
        return self._hessian_product(vectors, x_chunk, y_chunk)


class GaussNewtonOperator(_DataOperator):
    """G V ``(k, D)``, G = (1/N) Σ_i J_iᵀ ∇²ℓ_i J_i (PSD) for the FunctionalModel's loss."""

    def _chunk_product(self, vectors, x_chunk, y_chunk):
        return self._gauss_newton_product(vectors, x_chunk, y_chunk)


class ResidualOperator(_DataOperator):
    """R V = H V − G V ``(k, D)``, the part of the Hessian that carries the loss-gradient terms."""

    def _chunk_product(self, vectors, x_chunk, y_chunk):
        return (self._hessian_product(vectors, x_chunk, y_chunk)
                - self._gauss_newton_product(vectors, x_chunk, y_chunk))


class MatrixOperator:
    """A dense symmetric matrix ``(D, D)`` as an operator."""

    def __init__(self, matrix: torch.Tensor):
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
            raise ValueError(f"MatrixOperator needs a square matrix, got shape {tuple(matrix.shape)}")
        self.matrix = matrix
        self.dim = matrix.shape[0]
        self.dtype = matrix.dtype
        self.device = matrix.device
        self.products = 0

    def __call__(self, vectors: torch.Tensor) -> torch.Tensor:
        _check_vectors(self, vectors)
        self.products += len(vectors)
        return vectors @ self.matrix.T


@dataclass
class EigenResult:
    """Eigenvalues ``(k,)`` float64 on the CPU (Lanczos: descending for ``largest``, ascending for
    ``smallest``; power iteration: in the order found), eigenvectors
    ``(k, D)`` as unit rows (or None), operator products used, wall seconds, iterations run,
    whether every wanted pair met the tolerance, and (Lanczos) each pair's error bound ``(k,)``,
    in the eigenvalues' order: its residual norm ‖A y − λ y‖ plus the rounding allowance of the
    operator's dtype (``lanczos``); some eigenvalue of A lies within it of λ."""

    eigenvalues: torch.Tensor
    eigenvectors: torch.Tensor | None
    products: int
    seconds: float
    iterations: int
    converged: bool
    residuals: torch.Tensor | None = None


@dataclass
class TraceEstimate:
    """Estimate of Tr(A), operator products used, wall seconds."""

    estimate: float
    products: int
    seconds: float


@dataclass
class TraceFrobeniusRatio:
    """Tr(A)/‖A‖_F (Fort & Scherlis 2018) with its two Hutchinson estimates."""

    ratio: float
    trace: float
    frobenius: float
    products: int
    seconds: float


@dataclass
class SpectralDensity:
    """SLQ density ``(G,)`` on ``grid`` ``(G,)`` (integrates to 1), Gaussian width ``sigma``; Gauss
    quadrature ``nodes`` and ``weights`` ``(n_vectors, steps)`` (each row of weights sums to 1)."""

    grid: torch.Tensor
    density: torch.Tensor
    sigma: float
    nodes: torch.Tensor
    weights: torch.Tensor
    products: int
    seconds: float


def _check_count(name: str, value: int, upper: int) -> None:
    if not 1 <= value <= upper:
        raise ValueError(f"{name}={value} must be in [1, {upper}]")


def _check_which(which: str) -> None:
    if which not in WHICH:
        raise ValueError(f"unknown which={which!r}; valid: {', '.join(WHICH)}")


def _random_unit(dim: int, generator: torch.Generator, operator: LinearOperator) -> torch.Tensor:
    v = torch.randn(dim, generator=generator, dtype=torch.float64)
    return (v / v.norm()).to(device=operator.device, dtype=operator.dtype)


def _rademacher(count: int, operator: LinearOperator, generator: torch.Generator) -> torch.Tensor:
    signs = torch.randint(0, 2, (count, operator.dim), generator=generator) * 2 - 1
    return signs.to(device=operator.device, dtype=operator.dtype)


def _orthogonalize(w: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """``w`` minus its projection on the orthonormal rows of ``basis``, done twice (Kahan–Parlett)."""
    for _ in range(2):
        w = w - (basis @ w) @ basis
    return w


def lanczos(operator: LinearOperator, k: int, which: str = "largest", tol: float = 1e-6,
            max_iter: int = 200, seed: int = 0, eigenvectors: bool = False) -> EigenResult:
    """Top-k (``largest``) or bottom-k (``smallest``) eigenpairs by Lanczos with full
    reorthogonalization, one operator product per iteration.

    Stops when every wanted Ritz pair (θ, y) has residual ‖A y − θ y‖ = |β_m s_m| < tol · |θ|, so
    that some eigenvalue lies within a relative ``tol`` of each returned one (small eigenvalues at
    either end are resolved relative to themselves, not to ‖A‖), after ``min(max_iter, D)``
    iterations (``converged`` False; ``residuals`` tell how far each value may be off), or when
    the Krylov space is exhausted. ``residuals`` are |β_m s_m| plus the rounding allowance
    D · ε · max|θ|, ε the machine epsilon of the operator's dtype (the worst-case rounding of a
    length-D dot product, Higham's γ_D, relative to ‖A‖ ≥ max|θ|): the products are rounded, so the
    Ritz values approximate the spectrum of A only up to that much (a float32 Hessian of 130
    parameters: 2.7e-6 · ‖A‖ off however small |β_m s_m| gets). One Krylov space holds each distinct eigenvalue once, so an eigenvalue
    of multiplicity > 1 is returned once when the run stops on the tolerance; on breakdown (an
    invariant subspace) the run restarts with a random vector orthogonal to the basis, so a run to
    the end (``tol=0``) finds the multiplicities.
    """
    _check_which(which)
    _check_count("k", k, operator.dim)
    if max_iter < k:
        raise ValueError(f"max_iter={max_iter} must be >= k={k}")
    start_time = time.perf_counter()
    generator = torch.Generator().manual_seed(seed)
    steps = min(max_iter, operator.dim)
    basis = torch.zeros(steps, operator.dim, dtype=operator.dtype, device=operator.device)
    alphas, betas = [], []
    q = _random_unit(operator.dim, generator, operator)
    beta, converged, m = 0.0, False, 0
    for m in range(1, steps + 1):
        basis[m - 1] = q
        w = operator(q[None])[0]
        alpha = torch.dot(q, w).item()
        w = _orthogonalize(w, basis[:m])
        alphas.append(alpha)
        beta = w.norm().item()
        ritz_values, ritz_vectors = torch.linalg.eigh(_tridiagonal(alphas, betas))
        wanted = slice(-k, None) if which == "largest" else slice(0, k)
        scale = ritz_values.abs().max().item()
        if m == steps:
            break
        if beta <= 1e-10 * max(scale, 1e-300):
            q = _orthogonalize(_random_unit(operator.dim, generator, operator), basis[:m])
            q = q / q.norm()
            beta = 0.0
        elif m >= k and bool((beta * ritz_vectors[-1, wanted].abs()
                              < tol * ritz_values[wanted].abs()).all()):
            converged = True
            break
        else:
            q = w / beta
        betas.append(beta)
    converged = converged or m == operator.dim
    order = torch.arange(m - 1, m - k - 1, -1) if which == "largest" else torch.arange(k)
    vectors = None
    if eigenvectors:
        ritz = ritz_vectors[:, order].T.to(device=operator.device, dtype=operator.dtype)
        vectors = ritz @ basis[:m]
        vectors = vectors / vectors.norm(dim=1, keepdim=True)
    rounding = operator.dim * torch.finfo(operator.dtype).eps * scale
    residuals = beta * ritz_vectors[-1, order].abs() + rounding
    return EigenResult(ritz_values[order].clone(), vectors, m, time.perf_counter() - start_time, m,
                       converged, residuals)


def _tridiagonal(alphas: list[float], betas: list[float]) -> torch.Tensor:
    """Symmetric tridiagonal matrix (float64, CPU) with diagonal ``alphas`` and off-diagonal ``betas``."""
    t = torch.diag(torch.tensor(alphas, dtype=torch.float64))
    if betas:
        off = torch.tensor(betas[:len(alphas) - 1], dtype=torch.float64)
        t += torch.diag(off, 1) + torch.diag(off, -1)
    return t


def power_iteration(operator: LinearOperator, k: int, tol: float = 1e-3, max_iter: int = 100,
                    seed: int = 0) -> EigenResult:
    """The k eigenpairs of largest magnitude by power iteration with deflation, as in PyHessian (Yao
    et al. 2020): each new vector is kept orthogonal to the eigenvectors found before it, and an
    eigenpair is accepted when the Rayleigh quotient changes by less than ``tol`` relative,
    |λ_t − λ_{t−1}| / (|λ_{t−1}| + 1e-6) < tol, or after ``max_iter`` products."""
    _check_count("k", k, operator.dim)
    _check_count("max_iter", max_iter, 2**31)
    start_time = time.perf_counter()
    generator = torch.Generator().manual_seed(seed)
    found = torch.zeros(0, operator.dim, dtype=operator.dtype, device=operator.device)
    values, products, converged = [], 0, True
    for _ in range(k):
        v = _random_unit(operator.dim, generator, operator)
        value, done = None, False
        for _ in range(max_iter):
            v = _orthogonalize(v, found)
            v = v / v.norm()
            hv = operator(v[None])[0]
            products += 1
            new_value = torch.dot(hv, v).item()
            v = hv / hv.norm()
            if value is not None and abs(value - new_value) / (abs(value) + 1e-6) < tol:
                value, done = new_value, True
                break
            value = new_value
        converged = converged and done
        values.append(value)
        found = torch.cat([found, _orthogonalize(v, found)[None]])
        found[-1] /= found[-1].norm()
    return EigenResult(torch.tensor(values, dtype=torch.float64), found, products,
                       time.perf_counter() - start_time, products, converged)


def _apply_in_batches(operator: LinearOperator, vectors: torch.Tensor, batch_size: int) -> torch.Tensor:
    return torch.cat([operator(vectors[i:i + batch_size]) for i in range(0, len(vectors), batch_size)])


def hutchinson_trace(operator: LinearOperator, num_samples: int, seed: int = 0,
                     batch_size: int = 16) -> TraceEstimate:
    """Tr(A) ≈ mean of vᵀ A v over ``num_samples`` Rademacher vectors (Hutchinson 1989), applied
    ``batch_size`` vectors per operator call."""
    _check_count("num_samples", num_samples, 2**31)
    start_time = time.perf_counter()
    vectors = _rademacher(num_samples, operator, torch.Generator().manual_seed(seed))
    images = _apply_in_batches(operator, vectors, batch_size)
    estimate = (vectors * images).sum(1).mean().item()
    return TraceEstimate(estimate, num_samples, time.perf_counter() - start_time)


def hutchpp_trace(operator: LinearOperator, num_products: int, seed: int = 0,
                  batch_size: int = 16) -> TraceEstimate:
    """Tr(A) by Hutch++ (Meyer, Musco, Musco, Woodruff 2021) with ``num_products`` operator products:
    s = num_products // 3 of them sketch the top of the range, Q = orth(A S); Tr(QᵀAQ) is exact on
    it (s more products) and Hutchinson with the remaining vectors estimates the trace of the
    deflated part (I − QQᵀ) A (I − QQᵀ)."""
    _check_count("num_products", num_products, 2**31)
    if num_products < 3:
        raise ValueError(f"hutchpp_trace needs num_products >= 3, got {num_products}")
    start_time = time.perf_counter()
    generator = torch.Generator().manual_seed(seed)
    sketch_size = num_products // 3
    sketch = _apply_in_batches(operator, _rademacher(sketch_size, operator, generator), batch_size)
    q = torch.linalg.qr(sketch.T).Q.T
    top = (q * _apply_in_batches(operator, q, batch_size)).sum().item()
    samples = _rademacher(num_products - 2 * sketch_size, operator, generator)
    samples = samples - (samples @ q.T) @ q
    rest = (samples * _apply_in_batches(operator, samples, batch_size)).sum(1).mean().item()
    return TraceEstimate(top + rest, num_products, time.perf_counter() - start_time)


TRACE_ESTIMATORS = {"hutchpp": hutchpp_trace, "hutchinson": hutchinson_trace}


def trace_to_frobenius_ratio(operator: LinearOperator, num_samples: int, seed: int = 0,
                             batch_size: int = 16) -> TraceFrobeniusRatio:
    """Tr(A)/‖A‖_F (Fort & Scherlis 2018), both from the same Rademacher vectors v: Tr(A) = E vᵀAv
    and ‖A‖_F² = E ‖Av‖²."""
    _check_count("num_samples", num_samples, 2**31)
    start_time = time.perf_counter()
    vectors = _rademacher(num_samples, operator, torch.Generator().manual_seed(seed))
    images = _apply_in_batches(operator, vectors, batch_size)
    trace = (vectors * images).sum(1).mean().item()
    frobenius = math.sqrt(images.pow(2).sum(1).mean().item())
    return TraceFrobeniusRatio(trace / frobenius, trace, frobenius, num_samples,
                               time.perf_counter() - start_time)


def _batched_lanczos(operator: LinearOperator, starts: torch.Tensor, steps: int):
    """Lanczos with full reorthogonalization from each row of ``starts`` ``(b, D)`` (unit rows),
    one operator call of b vectors per step. Returns the tridiagonal matrices ``(b, steps, steps)``
    and the number of steps each run made before its Krylov space was exhausted ``(b,)``."""
    count = len(starts)
    basis = torch.zeros(count, steps, operator.dim, dtype=operator.dtype, device=operator.device)
    tridiagonal = torch.zeros(count, steps, steps, dtype=torch.float64)
    lengths = torch.full((count,), steps)
    q = starts
    for j in range(steps):
        basis[:, j] = q
        w = operator(q)
        alpha = (q * w).sum(1)
        for _ in range(2):
            w = w - torch.einsum("bj,bjd->bd", torch.einsum("bjd,bd->bj", basis[:, :j + 1], w),
                                 basis[:, :j + 1])
        beta = w.norm(dim=1)
        tridiagonal[:, j, j] = alpha.double().cpu()
        if j == steps - 1:
            break
        scale = tridiagonal[:, :j + 1, :j + 1].abs().amax(dim=(1, 2))
        exhausted = (beta.double().cpu() <= 1e-10 * scale) & (lengths == steps)
        lengths[exhausted] = j + 1
        active = (lengths == steps).to(operator.device)
        beta = torch.where(active, beta, torch.zeros_like(beta))
        tridiagonal[:, j, j + 1] = tridiagonal[:, j + 1, j] = beta.double().cpu()
        q = torch.where(active[:, None], w / beta.clamp_min(1e-300)[:, None], torch.zeros_like(w))
    return tridiagonal, lengths


def spectral_density(operator: LinearOperator, num_vectors: int = 10, steps: int = 80,
                     broadening: float = DENSITY_BROADENING, grid_size: int = 10_000,
                     seed: int = 0) -> SpectralDensity:
    """Eigenvalue density by stochastic Lanczos quadrature (Ubaru, Chen, Saad 2017; Ghorbani et al.
    2019): ``num_vectors`` Lanczos runs of ``steps`` steps from Rademacher starts, run together; the
    Gauss quadrature nodes θ_j and weights τ_j (squared first components of the eigenvectors of the
    tridiagonal matrix) give φ(t) = mean over runs of Σ_j τ_j N(t; θ_j, σ²), σ = ``broadening`` ×
    (largest − smallest node), on ``grid_size`` points spanning the nodes ± 5σ; the grid step must
    not exceed σ (``grid_size`` ≥ 1/``broadening`` + 11). The default broadening keeps the mass
    of every interval (below 0, below λ_max/10) within 0.02 of the exact spectrum's on tiny nets
    with a dense spectrum; 0.01, wider than the bulk when outliers set the span, moved up to 0.16
    of the mass across 0 (benchmarks/RESULTS.md)."""
    _check_count("num_vectors", num_vectors, 2**31)
    _check_count("steps", steps, operator.dim)
    if broadening <= 0 or grid_size < 2:
        raise ValueError(f"need broadening > 0 and grid_size >= 2, got {broadening}, {grid_size}")
    if grid_size - 1 < 1 / broadening + 10:
        raise ValueError(f"grid_size={grid_size} makes the grid step wider than the Gaussian width "
                         f"at broadening={broadening}; need grid_size >= "
                         f"{math.ceil(1 / broadening + 11)}")
    start_time = time.perf_counter()
    starts = _rademacher(num_vectors, operator, torch.Generator().manual_seed(seed))
    starts = starts / math.sqrt(operator.dim)
    tridiagonal, lengths = _batched_lanczos(operator, starts, steps)
    nodes = torch.zeros(num_vectors, steps, dtype=torch.float64)
    weights = torch.zeros(num_vectors, steps, dtype=torch.float64)
    for run, length in enumerate(lengths.tolist()):
        values, vectors = torch.linalg.eigh(tridiagonal[run, :length, :length])
        nodes[run, :length], weights[run, :length] = values, vectors[0] ** 2
        nodes[run, length:] = values[-1]
    span = (nodes.max() - nodes.min()).item()
    sigma = broadening * span if span > 0 else broadening * max(abs(nodes.max().item()), 1.0)
    grid = torch.linspace(nodes.min().item() - 5 * sigma, nodes.max().item() + 5 * sigma, grid_size,
                          dtype=torch.float64)
    gaussians = torch.exp(-0.5 * ((grid[:, None, None] - nodes) / sigma) ** 2)
    density = (gaussians * weights).sum(-1).mean(-1) / (sigma * math.sqrt(2 * math.pi))
    return SpectralDensity(grid, density, sigma, nodes, weights, num_vectors * steps,
                           time.perf_counter() - start_time)


def gradient_overlap(gradient: torch.Tensor, eigenvectors: torch.Tensor) -> float:
    """‖P_k g‖² / ‖g‖², P_k the projector on the span of the orthonormal rows of ``eigenvectors``
    ``(k, D)`` (Gur-Ari, Roberts, Dyer 2018)."""
    if gradient.ndim != 1 or eigenvectors.ndim != 2 or eigenvectors.shape[1] != gradient.shape[0]:
        raise ValueError(f"need gradient (D,) and eigenvectors (k, D), got {tuple(gradient.shape)} "
                         f"and {tuple(eigenvectors.shape)}")
    norm = gradient.norm().item()
    if norm == 0:
        raise ValueError("gradient is zero; its overlap with a subspace is undefined")
    return ((eigenvectors @ gradient).norm().item() / norm) ** 2


@dataclass(frozen=True)
class CurvatureSettings:
    """Settings of one curvature measurement (``measure_curvature``): ``top_k`` largest eigenvalues
    of H and of G by Lanczos (``tol``, ``max_iter``), ``bottom_k`` smallest of H (0: none), the
    trace by ``trace_estimator`` (``TRACE_ESTIMATORS``) with ``trace_products`` products, SLQ with ``density_vectors`` runs of ``density_steps`` steps
    and Gaussian width ``density_broadening`` × spectral span on ``density_grid`` points; operator
    products over data chunks of ``chunk_size`` samples (None: one chunk); ``seed`` fixes every
    random start; ``eigenvectors`` keeps the top-k eigenvectors of H; ``spectrum`` False skips the
    Gauss–Newton eigenvalues and the SLQ density (curvature along training needs neither)."""

    top_k: int = 20
    bottom_k: int = 0
    tol: float = 1e-3
    max_iter: int = 200
    trace_products: int = 99
    trace_estimator: str = "hutchpp"
    density_vectors: int = 10
    density_steps: int = 80
    density_broadening: float = DENSITY_BROADENING
    density_grid: int = 10_000
    chunk_size: int | None = None
    seed: int = 0
    eigenvectors: bool = False
    spectrum: bool = True


@dataclass
class CurvatureMeasurement:
    """Curvature at one θ: ``arrays`` and ``attrs`` ready for ``io.write_h5``.

    arrays: ``hessian_top`` / ``gauss_newton_top`` ``(top_k,)`` descending, ``hessian_bottom``
    ``(bottom_k,)`` ascending (when asked), each with its Lanczos residual norms
    (``{name}_residuals``, same shape: how far each value may be from the spectrum),
    ``gradient_overlap`` ``(top_k,)`` whose entry k−1 is
    ‖P_k g‖²/‖g‖² for the top-k eigenspace of H, ``density_grid`` / ``density`` (SLQ; with
    ``gauss_newton_top`` only when ``settings.spectrum``), and
    ``hessian_eigenvectors`` ``(top_k, D)`` when asked. attrs: ``loss`` (nats), ``lambda_max``,
    ``trace`` (by ``settings.trace_estimator``), ``gradient_norm``, every setting, and ``{algorithm}_products`` /
    ``{algorithm}_seconds`` / ``{algorithm}_converged`` per algorithm."""

    arrays: dict[str, torch.Tensor]
    attrs: dict[str, object]


def measure_curvature(fmodel: FunctionalModel, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                      settings: CurvatureSettings) -> CurvatureMeasurement:
    """Hessian and Gauss–Newton spectra, trace, SLQ density and gradient overlap of the mean loss
    of ``fmodel`` on ``(x, y)`` at θ ``(D,)`` (the Sagun et al. 2017 / Papyan 2019 outlier–bulk
    picture and the Gur-Ari et al. 2018 overlap). The FunctionalModel's ``bn_mode`` and
    ``settings.chunk_size`` define the loss measured (module docstring); both are recorded."""
    if settings.trace_estimator not in TRACE_ESTIMATORS:
        raise ValueError(f"unknown trace_estimator {settings.trace_estimator!r}; valid: "
                         f"{', '.join(TRACE_ESTIMATORS)}")
    if settings.top_k > fmodel.layout.dim or settings.bottom_k > fmodel.layout.dim:
        raise ValueError(f"top_k={settings.top_k} and bottom_k={settings.bottom_k} must not exceed "
                         f"the parameter count D={fmodel.layout.dim}")
    hessian = HessianOperator(fmodel, theta, x, y, settings.chunk_size)
    lanczos_options = dict(tol=settings.tol, max_iter=settings.max_iter, seed=settings.seed)
    top = lanczos(hessian, settings.top_k, eigenvectors=True, **lanczos_options)
    trace = TRACE_ESTIMATORS[settings.trace_estimator](hessian, settings.trace_products,
                                                       seed=settings.seed)
    start_time = time.perf_counter()
    gradient = loss_gradient(fmodel, theta, x, y, settings.chunk_size)
    loss = sum(fmodel.loss(theta, xc, yc).item() * len(xc) / len(x)
               for xc, yc in _chunks(hessian.x, hessian.y, settings.chunk_size))
    overlap = torch.tensor([gradient_overlap(gradient, top.eigenvectors[:k])
                            for k in range(1, settings.top_k + 1)], dtype=torch.float64)
    gradient_seconds = time.perf_counter() - start_time
    arrays = {"hessian_top": top.eigenvalues, "hessian_top_residuals": top.residuals,
              "gradient_overlap": overlap}
    attrs: dict[str, object] = {
        **dataclasses.asdict(settings), "bn_mode": fmodel.bn_mode, "hvp_mode": hessian.hvp_mode,
        "loss_function": fmodel.loss_name,
        "n_samples": len(x), "dim": fmodel.layout.dim, "dtype": str(theta.dtype).removeprefix("torch."),
        "loss": loss, "lambda_max": top.eigenvalues[0].item(), "trace": trace.estimate,
        "gradient_norm": gradient.norm().item(), "gradient_seconds": gradient_seconds}
    results = {"hessian_lanczos": top}
    timed = {f"{settings.trace_estimator}_trace": trace}
    if settings.spectrum:
        gauss_newton = GaussNewtonOperator(fmodel, theta, x, y, settings.chunk_size)
        results["gauss_newton_lanczos"] = lanczos(gauss_newton, settings.top_k, **lanczos_options)
        arrays["gauss_newton_top"] = results["gauss_newton_lanczos"].eigenvalues
        arrays["gauss_newton_top_residuals"] = results["gauss_newton_lanczos"].residuals
        density = spectral_density(hessian, settings.density_vectors,
                                   min(settings.density_steps, hessian.dim),
                                   settings.density_broadening, settings.density_grid, settings.seed)
        arrays.update(density_grid=density.grid, density=density.density)
        attrs["density_sigma"] = density.sigma
        timed["slq_density"] = density
    if settings.bottom_k:
        bottom = lanczos(hessian, settings.bottom_k, which="smallest", **lanczos_options)
        arrays["hessian_bottom"] = bottom.eigenvalues
        arrays["hessian_bottom_residuals"] = bottom.residuals
        results["hessian_bottom_lanczos"] = bottom
    for name, result in results.items():
        attrs.update({f"{name}_products": result.products, f"{name}_seconds": result.seconds,
                      f"{name}_converged": result.converged})
    for name, result in timed.items():
        attrs.update({f"{name}_products": result.products, f"{name}_seconds": result.seconds})
    if settings.eigenvectors:
        arrays["hessian_eigenvectors"] = top.eigenvectors
    return CurvatureMeasurement(arrays, attrs)


def hessian_directions(fmodel: FunctionalModel, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                       k: int = 2, chunk_size: int | None = None, tol: float = 1e-4,
                       max_iter: int = 200, seed: int = 0) -> EigenResult:
    """The top-k Hessian eigenvectors at θ as landscape directions: unit rows ``(k, D)`` on θ's
    device, for ``landscape.line_points`` / ``surface_1d`` / ``surface_2d`` (a 1D profile along row
    i has curvature λ_i at α = 0). Each row's sign is fixed so that its entry of largest magnitude
    is positive (an eigenvector's sign is arbitrary)."""
    result = lanczos(HessianOperator(fmodel, theta, x, y, chunk_size), k, tol=tol, max_iter=max_iter,
                     seed=seed, eigenvectors=True)
    vectors = result.eigenvectors
    signs = vectors.gather(1, vectors.abs().argmax(1, keepdim=True)).sign()
    result.eigenvectors = vectors * signs
    return result
