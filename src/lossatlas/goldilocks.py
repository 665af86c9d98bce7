"""The Goldilocks zone (Fort & Scherlis 2019, "The Goldilocks zone: towards better understanding of
neural network loss landscapes"; Fort & Ganguli 2019): curvature of the loss at random
initializations of different radii.

At θ_r = r·θ₀ (θ₀ a seeded default initialization, r the radius scale; every parameter, weights and
biases, is multiplied by r, so ‖θ_r‖ = r‖θ₀‖ and the per-layer proportions are kept) two statistics of
the Hessian H of the mean training loss are measured:

- the full Hessian's Tr(H)/‖H‖_F, both estimated from the same Rademacher vectors v by
  Hessian-vector products (Tr H = E vᵀHv, ‖H‖_F² = E ‖Hv‖²; ``curvature.trace_to_frobenius_ratio``);
- in random d-dimensional subspaces spanned by the columns of A ``(D, d)`` (``RandomProjection``,
  the cuts that subspace training moves in), the restricted Hessian H_A = AᵀHA ``(d, d)`` built
  exactly from d Hessian-vector products: its Tr/‖·‖_F and the fraction of its eigenvalues that are
  positive.

Fort & Scherlis define the Goldilocks zone as the shell of radii where these ratios are high (a large
excess of positive curvature) and find that training in a random hyperplane succeeds where the
hyperplane meets it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn

from .curvature import HessianOperator, LinearOperator, trace_to_frobenius_ratio
from .functional import FunctionalModel
from .parameterizations import RandomProjection, scale_parameters_
from .params import get_flat_params
from .train import init_model


def restricted_hessian(operator: LinearOperator, projection_matrix: torch.Tensor) -> torch.Tensor:
    """The Hessian restricted to the column span of A = ``projection_matrix`` ``(D, d)``: AᵀHA
    ``(d, d)``, from d products of ``operator`` (H), in the operator's dtype and device, symmetrized
    as (M + Mᵀ)/2 (M differs from its transpose only by rounding)."""
    if projection_matrix.ndim != 2 or projection_matrix.shape[0] != operator.dim:
        raise ValueError(f"projection matrix must have shape ({operator.dim}, d), "
                         f"got {tuple(projection_matrix.shape)}")
    columns = projection_matrix.T.to(device=operator.device, dtype=operator.dtype)
    restricted = columns @ operator(columns).T
    return (restricted + restricted.T) / 2


def trace_frobenius_ratio(matrix: torch.Tensor) -> float:
    """Tr(M)/‖M‖_F of a dense square matrix (1 for a multiple of a rank-one PSD matrix, √d for a
    multiple of the identity, negative when negative curvature dominates)."""
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"need a square matrix, got shape {tuple(matrix.shape)}")
    frobenius = torch.linalg.matrix_norm(matrix).item()
    if frobenius == 0:
        raise ValueError("Tr/‖·‖_F of the zero matrix is undefined")
    return torch.trace(matrix).item() / frobenius


def positive_fraction(eigenvalues: torch.Tensor) -> float:
    """Fraction of ``eigenvalues`` ``(d,)`` that are strictly positive."""
    if eigenvalues.numel() == 0:
        raise ValueError("need at least one eigenvalue")
    return (eigenvalues > 0).double().mean().item()


def xavier_radius(model: nn.Module) -> float:
    """Expected ‖θ‖ of a Glorot (Xavier) normal initialization of ``model``'s shape: weights
    (parameters with ≥ 2 dimensions) of variance 2/(fan_in + fan_out), everything else 0;
    √Σ numel · 2/(fan_in + fan_out). The reference radius of Fort & Scherlis 2019."""
    total = 0.0
    for param in model.parameters():
        if param.ndim >= 2:
            receptive = math.prod(param.shape[2:])
            fan_in, fan_out = param.shape[1] * receptive, param.shape[0] * receptive
            total += param.numel() * 2.0 / (fan_in + fan_out)
    return math.sqrt(total)


@dataclass(frozen=True)
class GoldilocksSettings:
    """Settings of ``measure_goldilocks``: the init (``seed``) rescaled to each of ``radius_scales``;
    ``trace_samples`` Rademacher vectors for the full-Hessian ratio (seeded with ``seed``);
    ``subspaces`` random subspaces of dimension ``subspace_dim`` (``RandomProjection`` with seeds
    0 … subspaces − 1: unit-norm Gaussian columns, the same subspaces at every radius); the
    FunctionalModel's ``bn_mode`` (``batch``: batch statistics, as subspace training uses) over
    data chunks of ``chunk_size`` samples (None: the whole subset, one chunk)."""

    radius_scales: tuple[float, ...]
    subspace_dim: int = 20
    subspaces: int = 5
    trace_samples: int = 30
    seed: int = 0
    bn_mode: str = "batch"
    chunk_size: int | None = None


@dataclass
class GoldilocksMeasurement:
    """Curvature at every radius scale: ``arrays`` and ``attrs`` ready for ``io.write_h5``.

    arrays (R radius scales, S subspaces, d = subspace_dim): ``radius_scales`` ``(R,)``, ``radius``
    ``(R,)`` = ‖θ_r‖, ``loss`` ``(R,)`` (mean loss on the data, nats), ``full_ratio`` /
    ``full_trace`` / ``full_frobenius`` ``(R,)`` (Hutchinson estimates), ``restricted_ratio`` /
    ``restricted_trace`` / ``restricted_frobenius`` / ``positive_fraction`` ``(R, S)`` (exact for
    the subspace), ``restricted_eigenvalues`` ``(R, S, d)`` ascending, ``projection_seeds`` ``(S,)``.
    attrs: every setting, ``dim`` (D), ``n_samples``, ``init_radius`` (‖θ₀‖ at r = 1),
    ``xavier_radius``, ``bn_mode``, ``loss_function``, ``dtype``, ``parameters_scaled``, the
    projection's description, products and seconds."""

    arrays: dict[str, torch.Tensor]
    attrs: dict[str, object]


def measure_goldilocks(build: Callable[[], nn.Module], x: torch.Tensor, y: torch.Tensor,
                       settings: GoldilocksSettings, device: torch.device | str = "cpu"
                       ) -> GoldilocksMeasurement:
    """The Goldilocks-zone statistics (module docstring) of the model ``build()`` makes, initialized
    with ``train.init_model(build, settings.seed)`` (the θ₀ a training run with that seed starts
    from) and rescaled with ``scale_parameters_`` to every radius scale, on ``(x, y)`` (moved to
    ``device``), in the model's dtype."""
    if not settings.radius_scales:
        raise ValueError("need at least one radius scale")
    start_time = time.perf_counter()
    reference = init_model(build, settings.seed)
    dim_full = get_flat_params(reference).numel()
    if not 1 <= settings.subspace_dim <= dim_full:
        raise ValueError(f"subspace_dim={settings.subspace_dim} must be in [1, D={dim_full}]")
    projection_seeds = list(range(settings.subspaces))
    projections = [RandomProjection(dim_full, settings.subspace_dim, seed, materialize=True)
                   for seed in projection_seeds]
    matrices = [projection.matrix().to(device) for projection in projections]
    rows: dict[str, list] = {key: [] for key in (
        "radius", "loss", "full_ratio", "full_trace", "full_frobenius", "restricted_ratio",
        "restricted_trace", "restricted_frobenius", "positive_fraction", "restricted_eigenvalues")}
    products = 0
    for scale in settings.radius_scales:
        model = init_model(build, settings.seed)
        scale_parameters_(model, scale)
        fmodel = FunctionalModel(model.to(device), bn_mode=settings.bn_mode)
        theta = fmodel.theta0
        hessian = HessianOperator(fmodel, theta, x.to(device), y.to(device), settings.chunk_size)
        full = trace_to_frobenius_ratio(hessian, settings.trace_samples, seed=settings.seed)
        restricted = [restricted_hessian(hessian, matrix).double().cpu() for matrix in matrices]
        eigenvalues = torch.stack([torch.linalg.eigvalsh(m) for m in restricted])
        rows["radius"].append(theta.norm().item())
        with torch.no_grad():
            rows["loss"].append(fmodel.loss(theta, hessian.x, hessian.y).item())
        rows["full_ratio"].append(full.ratio)
        rows["full_trace"].append(full.trace)
        rows["full_frobenius"].append(full.frobenius)
        rows["restricted_ratio"].append([trace_frobenius_ratio(m) for m in restricted])
        rows["restricted_trace"].append([torch.trace(m).item() for m in restricted])
        rows["restricted_frobenius"].append([torch.linalg.matrix_norm(m).item() for m in restricted])
        rows["positive_fraction"].append([positive_fraction(e) for e in eigenvalues])
        rows["restricted_eigenvalues"].append(eigenvalues)
        products += hessian.products
    arrays = {key: torch.tensor(value, dtype=torch.float64) for key, value in rows.items()
              if key != "restricted_eigenvalues"}
    arrays["restricted_eigenvalues"] = torch.stack(rows["restricted_eigenvalues"])
    arrays["radius_scales"] = torch.tensor(settings.radius_scales, dtype=torch.float64)
    arrays["projection_seeds"] = torch.tensor(projection_seeds)
    theta0 = get_flat_params(reference)
    attrs: dict[str, object] = {
        **asdict(settings), "dim": dim_full, "n_samples": len(x),
        "init_radius": theta0.norm().item(), "xavier_radius": xavier_radius(reference),
        "parameters_scaled": "weights and biases", "loss_function": fmodel.loss_name,
        "dtype": str(theta0.dtype).removeprefix("torch."),
        "full_estimator": "Hutchinson, Rademacher vectors",
        "projection_columns": projections[0].describe()["columns"],
        "hessian_products": products, "seconds": time.perf_counter() - start_time}
    return GoldilocksMeasurement(arrays, attrs)
