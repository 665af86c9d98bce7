"""Parameterizations θ = f(tensors): what the trainer optimizes, mapped to a flat θ ``(D,)``.

A parameterization owns a small dict of trainable tensors and maps them (and, for parameterizations
that need it, a random draw made once per minibatch) differentiably to θ, which
``FunctionalModel`` turns into a network. The trainer (``lossatlas.train.train_members``) optimizes the
trainable tensors of any parameterization with one loop:

- ``FullSpace``: θ itself is trained (ordinary training);
- ``RandomSubspace``: θ = θ₀ + A z with z ``(d,)`` starting at 0 and A a fixed random ``(D, d)``
  matrix (intrinsic dimension, Li, Farkhoor, Liu & Yosinski 2018; the random "cuts" of Fort &
  Jastrzebski 2019);
- ``BezierCurve``, ``PolygonalChain``: a curve between two fixed solutions through a trainable bend
  (mode connectivity, Garipov et al. 2018), one random t per minibatch;
- ``SimplicialComplex``: simplices sharing trainable connector points, each containing one of N
  fixed solutions (Benton et al. 2021; Fort & Jastrzebski 2019), J random points per minibatch.

A parameterization's ``describe()`` is part of the run's resume fingerprint and of its outputs.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import math
from typing import Protocol

import numpy as np
import torch

PARAMETERIZATIONS = ("full", "subspace")
PROJECTIONS = ("auto", "dense", "blocked")
DEFAULT_PROJECTION_BUDGET = 512 * 2**20
_BLOCK_ENTRIES = 2**22


class Parameterization(Protocol):
    """Trainable tensors → θ ``(D,)``."""

    kind: str

    def initial_tensors(self) -> dict[str, torch.Tensor]:
        """The trainable tensors at the start of training (fresh copies)."""

    def sample(self, generator: torch.Generator) -> torch.Tensor | None:
        """The random draw of one minibatch (``None`` when θ is deterministic; then nothing is
        drawn from ``generator``)."""

    def theta(self, tensors: dict[str, torch.Tensor], sample: torch.Tensor | None = None
              ) -> torch.Tensor:
        """θ ``(D,)`` at the trainable ``tensors`` (differentiable), or ``(J, D)`` points whose
        losses the trainer averages; ``sample=None`` gives the one point ``(D,)`` that checkpoints
        and per-epoch metrics describe."""

    def penalty(self, tensors: dict[str, torch.Tensor], sample: torch.Tensor | None,
                thetas: torch.Tensor) -> torch.Tensor | None:
        """A term added to the minibatch loss at the points ``thetas`` ``(D,)`` or ``(J, D)``
        that ``theta(tensors, sample)`` gave (``None``: nothing added)."""

    def evaluation_points(self, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        """The fixed points ``(P, D)`` at which the trainer judges convergence (``Convergence``):
        their largest train loss less the largest at the fixed solutions among them
        (``evaluation_solutions``), named ``loss_name``, is compared round by round; the set is
        described by ``evaluation_set``."""

    def evaluation_solutions(self) -> torch.Tensor:
        """Which of the ``evaluation_points`` ``(P,)`` are fixed solutions (a curve's ends, a
        complex's modes); none for a parameterization without them."""

    def describe(self) -> dict:
        """JSON-able settings that identify the parameterization."""

    def to(self, device: torch.device | str) -> Parameterization:
        """The same parameterization with its fixed tensors on ``device``."""


class _OnePoint:
    """What the parameterizations of one deterministic point θ share: no random draw, no
    penalty, and θ itself as the one evaluation point (no fixed solution among them)."""

    loss_name = "train loss"

    def sample(self, generator: torch.Generator) -> None:
        return None

    def penalty(self, tensors, sample, thetas) -> None:
        return None

    def evaluation_points(self, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.theta(tensors)[None]

    def evaluation_solutions(self) -> torch.Tensor:
        return torch.zeros(1, dtype=torch.bool)


class FullSpace(_OnePoint):
    """θ is the trainable tensor itself (``{"theta": (D,)}``), starting at ``theta0``."""

    kind = "full"

    def __init__(self, theta0: torch.Tensor):
        self.theta0 = theta0.detach()

    def initial_tensors(self) -> dict[str, torch.Tensor]:
        return {"theta": self.theta0.clone()}

    def theta(self, tensors: dict[str, torch.Tensor], sample: None = None) -> torch.Tensor:
        return tensors["theta"]

    evaluation_set = "at θ"

    def describe(self) -> dict:
        return {"kind": self.kind, "dim": self.theta0.numel()}

    def to(self, device: torch.device | str) -> FullSpace:
        return FullSpace(self.theta0.to(device))


def _block_seed(seed: int, block: int) -> int:
    """Seed of row block ``block`` of the projection with seed ``seed`` (independent streams)."""
    digest = hashlib.sha256(f"lossatlas-projection:{seed}:{block}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


class RandomProjection:
    """A random ``(D, d)`` matrix A: i.i.d. standard Gaussian entries, then every column scaled to
    unit norm over all D entries (all layers jointly; Li et al. 2018), or with ``orthonormal`` the Q
    of its QR decomposition (orthonormal columns).

    The Gaussian entries are generated in row blocks of ``block_rows`` rows, block b from a
    generator on ``device`` seeded by ``(seed, b)``, so any block can be regenerated on its own.
    ``materialize`` (``None``: when D·d·4 bytes fits ``memory_budget_bytes``) keeps the whole
    matrix; otherwise every product regenerates the blocks (matrix-free: memory of one block,
    compute of one Gaussian draw of A per product) and gives the same values as the dense A.
    Orthonormal columns need the materialized matrix.
    """

    def __init__(self, dim_full: int, dim: int, seed: int, *, orthonormal: bool = False,
                 materialize: bool | None = None, block_rows: int | None = None,
                 memory_budget_bytes: int = DEFAULT_PROJECTION_BUDGET,
                 device: torch.device | str = "cpu"):
        if not 1 <= dim <= dim_full:
            raise ValueError(f"subspace dimension d={dim} must be in [1, D={dim_full}]")
        self.dim_full, self.dim, self.seed = dim_full, dim, seed
        self.orthonormal = orthonormal
        self.device = torch.device(device)
        self.block_rows = block_rows or max(1, min(dim_full, _BLOCK_ENTRIES // dim))
        self.memory_budget_bytes = memory_budget_bytes
        fits = 4 * dim_full * dim <= memory_budget_bytes
        self.materialized = fits if materialize is None else materialize
        if orthonormal and not self.materialized:
            raise ValueError(f"orthonormal columns need the dense A ({dim_full} x {dim}, "
                             f"{4 * dim_full * dim / 2**20:.0f} MiB): raise the memory budget or "
                             "use unit-norm Gaussian columns")
        self._dense: torch.Tensor | None = None
        # the column norms summed block by block in both cases, so dense and blocked agree bitwise
        gaussian = torch.cat(list(self._gaussian_blocks())) if self.materialized else None
        squares = torch.zeros(dim, device=self.device)
        for block in (gaussian.split(self.block_rows) if self.materialized
                      else self._gaussian_blocks()):
            squares += block.pow(2).sum(0)
        self.column_norms = squares.sqrt()
        if self.materialized:
            self._dense = torch.linalg.qr(gaussian).Q if orthonormal else gaussian / self.column_norms

    def _gaussian_blocks(self):
        for block, start in enumerate(range(0, self.dim_full, self.block_rows)):
            rows = min(self.block_rows, self.dim_full - start)
            generator = torch.Generator(self.device).manual_seed(_block_seed(self.seed, block))
            yield torch.randn(rows, self.dim, generator=generator, device=self.device)

    def blocks(self):
        """Row blocks of A in order, ``(rows, d)`` each."""
        if self._dense is not None:
            yield from self._dense.split(self.block_rows)
            return
        for gaussian in self._gaussian_blocks():
            yield gaussian / self.column_norms

    def matrix(self) -> torch.Tensor:
        """A as a dense ``(D, d)`` tensor (for tests and small d)."""
        return self._dense if self._dense is not None else torch.cat(list(self.blocks()))

    def apply(self, z: torch.Tensor) -> torch.Tensor:
        """A z ``(D,)`` for z ``(d,)``, differentiable in z."""
        if self._dense is not None:
            return self._dense @ z
        return _BlockedProduct.apply(z, self)

    def apply_rows(self, z: torch.Tensor) -> torch.Tensor:
        """A zᵢ for every row of z ``(m, d)``, as rows ``(m, D)``: one product that reads the
        dense A once for all m (memory-bound at large D·d), differentiable in z."""
        if self._dense is not None:
            return z @ self._dense.T
        return _BlockedProduct.apply(z, self)

    def apply_transpose(self, v: torch.Tensor) -> torch.Tensor:
        """Aᵀ v ``(d,)`` for v ``(D,)``, or the rows vᵢ A ``(m, d)`` for rows v ``(m, D)`` (each
        regenerated block serves every row)."""
        if v.dim() == 2:
            if self._dense is not None:
                return v @ self._dense
            out = torch.zeros(v.shape[0], self.dim, dtype=v.dtype, device=v.device)
            start = 0
            for block in self.blocks():
                out += v[:, start:start + block.shape[0]] @ block
                start += block.shape[0]
            return out
        if self._dense is not None:
            return self._dense.T @ v
        out = torch.zeros(self.dim, dtype=v.dtype, device=v.device)
        start = 0
        for block in self.blocks():
            out += block.T @ v[start:start + block.shape[0]]
            start += block.shape[0]
        return out

    def describe(self) -> dict:
        return {"dim": self.dim, "seed": self.seed, "orthonormal": self.orthonormal,
                "columns": "orthonormal" if self.orthonormal else "unit-norm Gaussian",
                "projection": "dense" if self.materialized else "blocked",
                "block_rows": self.block_rows}

    def to(self, device: torch.device | str) -> RandomProjection:
        device = torch.device(device)
        if device == self.device:
            return self
        return RandomProjection(self.dim_full, self.dim, self.seed, orthonormal=self.orthonormal,
                                materialize=self.materialized, block_rows=self.block_rows,
                                memory_budget_bytes=self.memory_budget_bytes, device=device)


class _BlockedProduct(torch.autograd.Function):
    """A z ``(D,)`` for z ``(d,)``, or the rows A zᵢ ``(m, D)`` for rows z ``(m, d)``, with A
    regenerated block by block (once for all rows) in the forward and the backward pass."""

    @staticmethod
    def forward(z: torch.Tensor, projection: RandomProjection) -> torch.Tensor:
        if z.dim() == 2:
            return torch.cat([z @ block.T for block in projection.blocks()], dim=1)
        return torch.cat([block @ z for block in projection.blocks()])

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.projection = inputs[1]

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        return ctx.projection.apply_transpose(grad_output), None


class MatrixProjection:
    """A given dense ``(D, d)`` matrix A (e.g. a user's own basis, or the identity)."""

    def __init__(self, matrix: torch.Tensor):
        if matrix.dim() != 2:
            raise ValueError(f"a projection matrix must be (D, d), got shape {tuple(matrix.shape)}")
        self.matrix_ = matrix.detach()
        self.dim_full, self.dim = matrix.shape

    def matrix(self) -> torch.Tensor:
        return self.matrix_

    def apply(self, z: torch.Tensor) -> torch.Tensor:
        return self.matrix_ @ z

    def apply_rows(self, z: torch.Tensor) -> torch.Tensor:
        return z @ self.matrix_.T

    def apply_transpose(self, v: torch.Tensor) -> torch.Tensor:
        return self.matrix_.T @ v

    def describe(self) -> dict:
        return {"dim": self.dim, "projection": "given matrix",
                "matrix_sha256": hashlib.sha256(self.matrix_.cpu().numpy().tobytes()).hexdigest()}

    def to(self, device: torch.device | str) -> MatrixProjection:
        return MatrixProjection(self.matrix_.to(device))


class RandomSubspace(_OnePoint):
    """θ = θ₀ + A z, trainable ``{"z": (d,)}`` starting at 0, A a ``RandomProjection`` (or a
    ``MatrixProjection``)."""

    kind = "subspace"

    def __init__(self, theta0: torch.Tensor, projection: RandomProjection | MatrixProjection):
        if projection.dim_full != theta0.numel():
            raise ValueError(f"projection maps to D={projection.dim_full}, θ₀ has {theta0.numel()}")
        self.theta0 = theta0.detach()
        self.projection = projection

    def initial_tensors(self) -> dict[str, torch.Tensor]:
        return {"z": torch.zeros(self.projection.dim, dtype=self.theta0.dtype,
                                 device=self.theta0.device)}

    def theta(self, tensors: dict[str, torch.Tensor], sample: None = None) -> torch.Tensor:
        return self.theta0 + self.projection.apply(tensors["z"])

    evaluation_set = "at θ₀ + A z"

    def describe(self) -> dict:
        return {"kind": self.kind, **self.projection.describe()}

    def to(self, device: torch.device | str) -> RandomSubspace:
        return RandomSubspace(self.theta0.to(device), self.projection.to(device))


def build_parameterization(spec: dict | None, theta0: torch.Tensor, *,
                           device: torch.device | str = "cpu") -> Parameterization:
    """The parameterization a run's settings ask for: ``spec`` ``None`` or ``{"kind": "full"}``, or
    ``{"kind": "subspace", "dim": d, "seed": s, "orthonormal": bool, "projection":
    "auto"|"dense"|"blocked", "memory_budget_mib": m}`` (missing keys: seed 0, unit-norm Gaussian
    columns, auto, 512 MiB), around θ₀ on ``device``."""
    spec = dict(spec or {"kind": "full"})
    kind = spec.pop("kind", "full")
    theta0 = theta0.to(device)
    if kind not in PARAMETERIZATIONS:
        raise ValueError(f"unknown parameterization {kind!r}; valid: {', '.join(PARAMETERIZATIONS)}")
    if kind == "full":
        if spec:
            raise ValueError(f"parameterization 'full' takes no options, got {sorted(spec)}")
        return FullSpace(theta0)
    projection = spec.pop("projection", "auto")
    if projection not in PROJECTIONS:
        raise ValueError(f"unknown projection {projection!r}; valid: {', '.join(PROJECTIONS)}")
    budget = int(spec.pop("memory_budget_mib", DEFAULT_PROJECTION_BUDGET // 2**20) * 2**20)
    dim, seed = spec.pop("dim"), spec.pop("seed", 0)
    orthonormal = spec.pop("orthonormal", False)
    if spec:
        raise ValueError(f"unknown option(s) of parameterization 'subspace': {sorted(spec)}")
    materialize = None if projection == "auto" else projection == "dense"
    return RandomSubspace(theta0, _shared_projection(theta0.numel(), dim, seed, orthonormal,
                                                     materialize, budget, torch.device(device)))


@functools.lru_cache(maxsize=4)
def _shared_projection(dim_full: int, dim: int, seed: int, orthonormal: bool,
                       materialize: bool | None, budget: int, device: torch.device
                       ) -> RandomProjection:
    """One ``RandomProjection`` per setting in a process: the members of a batch that share a
    projection (subspace runs of one seed at several init scales) share its matrix instead of
    holding copies (at D = 50 410, d = 3 800: 766 MB each)."""
    return RandomProjection(dim_full, dim, seed, orthonormal=orthonormal, materialize=materialize,
                            memory_budget_bytes=budget, device=device)


STRUCTURES = ("bezier", "polychain", "complex")
# The fixed points at which a structure's convergence is judged (``evaluation_points``): 17 evenly
# spaced t on a curve (steps of 1/16, holding every quarter), the resolution-4 lattice on every
# simplex of a complex (35 points for 3 modes and 2 connectors).
CURVE_EVALUATION_POINTS = 17
COMPLEX_EVALUATION_RESOLUTION = 4


def simplex_lattice(vertices: int, resolution: int) -> np.ndarray:
    """Barycentric weights ``(P, vertices)`` of the regular lattice on a simplex: every vector of
    multiples of 1/``resolution`` that sums to 1 (P = C(resolution + vertices − 1, vertices − 1));
    it includes the vertices, ``resolution`` − 1 interior points on every edge, and covers every
    face."""
    if vertices < 1 or resolution < 1:
        raise ValueError(f"need vertices >= 1 and resolution >= 1, got {vertices}, {resolution}")
    rows = [counts for counts in itertools.product(range(resolution + 1), repeat=vertices)
            if sum(counts) == resolution]
    return np.asarray(rows, dtype=np.float64) / resolution


def build_structure(spec: dict, points: torch.Tensor, labels: list[str], *,
                    device: torch.device | str = "cpu") -> _Curve | SimplicialComplex:
    """The low-loss structure through the fixed solutions ``points`` ``(N, D)`` (named by
    ``labels``) that ``spec`` asks for: ``{"kind": "bezier" | "polychain", "l2": wd}`` (N = 2) or
    ``{"kind": "complex", "connectors": k, "samples": J, "l2": wd, "volume_weight": λ}``, on
    ``device``."""
    spec = dict(spec)
    kind = spec.pop("kind", None)
    if kind not in STRUCTURES:
        raise ValueError(f"unknown structure {kind!r}; valid: {', '.join(STRUCTURES)}")
    if len(labels) != points.shape[0]:
        raise ValueError(f"{points.shape[0]} points but {len(labels)} labels")
    points = points.to(device)
    l2 = spec.pop("l2", 0.0)
    if kind == "complex":
        structure = SimplicialComplex(points, spec.pop("connectors", 1),
                                      samples=spec.pop("samples", 5), l2=l2,
                                      volume_weight=spec.pop("volume_weight", 0.0),
                                      labels=tuple(labels))
    else:
        if points.shape[0] != 2:
            raise ValueError(f"a {kind} curve connects 2 solutions, got {points.shape[0]}")
        curve = BezierCurve if kind == "bezier" else PolygonalChain
        structure = curve(points, l2=l2, labels=tuple(labels))
    if spec:
        raise ValueError(f"unknown option(s) of structure {kind!r}: {sorted(spec)}")
    return structure


def scale_parameters_(model: torch.nn.Module, scale: float) -> None:
    """Multiply every trainable parameter of ``model`` (weights and biases) by ``scale`` in place,
    so ‖θ₀‖ becomes ``scale``·‖θ₀‖ (inits at radius scale α, Fort & Scherlis 2019)."""
    if not (scale > 0 and math.isfinite(scale)):
        raise ValueError(f"init scale must be a positive finite number, got {scale}")
    with torch.no_grad():
        for param in model.parameters():
            param.mul_(scale)


class _Curve:
    """A curve θ(t), t ∈ [0, 1], between two fixed solutions θ_a = θ(0) and θ_b = θ(1) through one
    trainable bend θ_c (Garipov et al. 2018): θ(t) = Σ_i c_i(t) p_i with control points
    (θ_a, θ_c, θ_b) and the subclass's ``coefficients(t)`` ``(T, 3)``. Trainable ``{"bend": (D,)}``, starting at
    the midpoint (θ_a + θ_b)/2, where the curve is the straight segment. Each minibatch draws one
    t ~ U(0, 1); ``sample=None`` gives θ(½). ``penalty`` is Garipov's L2 on the curve point,
    0.5·``l2``·‖θ(t)‖² (the optimizer then has no weight decay). ``labels`` name the endpoints
    (run ids) in ``describe()``."""

    kind = "curve"

    def __init__(self, endpoints: torch.Tensor, *, l2: float = 0.0,
                 labels: tuple[str, str] = ("a", "b")):
        if endpoints.dim() != 2 or endpoints.shape[0] != 2:
            raise ValueError(f"a curve needs endpoints of shape (2, D), got {tuple(endpoints.shape)}")
        if not l2 >= 0:
            raise ValueError(f"l2 must be >= 0, got {l2}")
        self.endpoints = endpoints.detach()
        self.l2 = l2
        self.labels = tuple(labels)

    def control_points(self, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        """(θ_a, θ_c, θ_b) as ``(3, D)``."""
        return torch.stack([self.endpoints[0], tensors["bend"], self.endpoints[1]])

    def points(self, tensors: dict[str, torch.Tensor], t) -> torch.Tensor:
        """θ(t) ``(T, D)`` at parameters t ``(T,)``."""
        t = torch.as_tensor(t, dtype=self.endpoints.dtype, device=self.endpoints.device)
        return self.coefficients(t) @ self.control_points(tensors)

    def initial_tensors(self) -> dict[str, torch.Tensor]:
        return {"bend": self.endpoints.mean(0).clone()}

    def sample(self, generator: torch.Generator) -> torch.Tensor:
        return torch.rand(1, generator=generator)

    def theta(self, tensors: dict[str, torch.Tensor], sample: torch.Tensor | None = None
              ) -> torch.Tensor:
        return self.points(tensors, [0.5] if sample is None else sample)[0]

    def penalty(self, tensors: dict[str, torch.Tensor], sample, thetas: torch.Tensor
                ) -> torch.Tensor | None:
        return 0.5 * self.l2 * thetas.pow(2).sum() if self.l2 else None

    loss_name = "curve barrier"
    evaluation_set = (f"at {CURVE_EVALUATION_POINTS} evenly spaced t in [0, 1] (ends included; "
                      "a grid that holds Yang et al.'s t = 0, 1/4, 1/2, 3/4, 1), less the larger "
                      "end loss")

    def evaluation_points(self, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        """θ(t) at ``CURVE_EVALUATION_POINTS`` evenly spaced t ∈ [0, 1] ``(P, D)``."""
        return self.points(tensors, torch.linspace(0.0, 1.0, CURVE_EVALUATION_POINTS,
                                                   dtype=torch.float64))

    def evaluation_solutions(self) -> torch.Tensor:
        """The ends, t = 0 and t = 1."""
        ends = torch.zeros(CURVE_EVALUATION_POINTS, dtype=torch.bool)
        ends[[0, -1]] = True
        return ends

    def describe(self) -> dict:
        return {"kind": self.kind, "endpoints": list(self.labels), "l2": self.l2,
                "endpoints_sha256": _tensor_digest(self.endpoints)}

    def to(self, device: torch.device | str) -> _Curve:
        return type(self)(self.endpoints.to(device), l2=self.l2, labels=self.labels)


class BezierCurve(_Curve):
    """Quadratic Bézier curve θ(t) = (1−t)² θ_a + 2t(1−t) θ_c + t² θ_b (Garipov et al. 2018)."""

    kind = "bezier"

    @staticmethod
    def coefficients(t: torch.Tensor) -> torch.Tensor:
        return torch.stack([(1 - t) ** 2, 2 * t * (1 - t), t ** 2], dim=-1)


class PolygonalChain(_Curve):
    """Polygonal chain θ_a → θ_c → θ_b with the bend at t = ½ (Garipov et al. 2018)."""

    kind = "polychain"

    @staticmethod
    def coefficients(t: torch.Tensor) -> torch.Tensor:
        first = torch.stack([1 - 2 * t, 2 * t, torch.zeros_like(t)], dim=-1)
        second = torch.stack([torch.zeros_like(t), 2 - 2 * t, 2 * t - 1], dim=-1)
        return torch.where((t < 0.5)[..., None], first, second)


class SimplicialComplex:
    """A low-loss complex through N fixed solutions ("modes", ``(N, D)``) with k trainable
    connector points (Benton et al. 2021; the low-loss subspaces through a set of solutions of
    Fort & Jastrzebski 2019): simplex i = {mode i} ∪ connectors, so every simplex shares the
    connectors and the complex contains all N modes. Vertices are indexed modes 0…N−1, then
    connectors N…N+k−1. Trainable ``{"connectors": (k, D)}``, all starting at the modes' centroid.

    Each minibatch picks one simplex uniformly and draws ``samples`` (J) weight vectors from
    Dirichlet(1) on its k + 1 vertices; the sample is the weight matrix ``(J, N + k)`` over all
    vertices (zero off the simplex) and θ = weights @ vertices ``(J, D)``, whose losses the trainer
    averages. ``sample=None`` gives the connectors' centroid. ``penalty``: 0.5·``l2``·mean_j‖θ_j‖²
    and, with ``volume_weight`` λ > 0, Benton et al.'s −λ·log(Vol + 10⁻⁴) of the sampled simplex
    (Vol = √det(EEᵀ)/m! with E the m edge vectors from its first vertex)."""

    kind = "complex"

    def __init__(self, modes: torch.Tensor, connectors: int, *, samples: int = 5, l2: float = 0.0,
                 volume_weight: float = 0.0, labels: tuple[str, ...] | None = None):
        if modes.dim() != 2 or modes.shape[0] < 2:
            raise ValueError(f"a complex needs at least 2 modes as (N, D), got {tuple(modes.shape)}")
        if connectors < 1 or samples < 1:
            raise ValueError(f"need connectors >= 1 and samples >= 1, got {connectors}, {samples}")
        if not (l2 >= 0 and volume_weight >= 0):
            raise ValueError(f"l2 and volume_weight must be >= 0, got {l2}, {volume_weight}")
        self.modes = modes.detach()
        self.n_modes, self.n_connectors, self.samples = modes.shape[0], connectors, samples
        self.l2, self.volume_weight = l2, volume_weight
        self.labels = tuple(labels) if labels is not None else tuple(
            f"mode {i}" for i in range(self.n_modes))

    def simplex(self, index: int) -> list[int]:
        """Vertex indices of simplex ``index``: mode ``index`` and every connector."""
        return [index, *range(self.n_modes, self.n_modes + self.n_connectors)]

    def vertices(self, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        """All vertices ``(N + k, D)``: modes, then connectors."""
        return torch.cat([self.modes, tensors["connectors"]])

    def initial_tensors(self) -> dict[str, torch.Tensor]:
        return {"connectors": self.modes.mean(0).repeat(self.n_connectors, 1)}

    def sample(self, generator: torch.Generator) -> torch.Tensor:
        index = int(torch.randint(self.n_modes, (1,), generator=generator))
        gamma = torch.empty(self.samples, self.n_connectors + 1).exponential_(generator=generator)
        weights = torch.zeros(self.samples, self.n_modes + self.n_connectors)
        weights[:, self.simplex(index)] = gamma / gamma.sum(1, keepdim=True)
        return weights

    def theta(self, tensors: dict[str, torch.Tensor], sample: torch.Tensor | None = None
              ) -> torch.Tensor:
        if sample is None:
            return tensors["connectors"].mean(0)
        return sample.to(self.modes) @ self.vertices(tensors)

    def penalty(self, tensors: dict[str, torch.Tensor], sample: torch.Tensor | None,
                thetas: torch.Tensor) -> torch.Tensor | None:
        terms = []
        if self.l2:
            terms.append(0.5 * self.l2 * thetas.pow(2).sum(-1).mean())
        if self.volume_weight:
            on_simplex = sample[0].nonzero().flatten().tolist()
            volume = simplex_volume(self.vertices(tensors)[on_simplex])
            terms.append(-self.volume_weight * torch.log(volume + 1e-4))
        return sum(terms) if terms else None

    loss_name = "complex barrier"
    evaluation_set = (f"at the points of the resolution-{COMPLEX_EVALUATION_RESOLUTION} "
                      "barycentric lattice on every simplex (its vertices, solutions and "
                      "connectors, points on every edge, and interior points), less the largest "
                      "loss of its solutions")

    def lattice_weights(self, resolution: int) -> torch.Tensor:
        """Weights ``(P, N + k)`` over all vertices (modes, then connectors) of the lattice points
        of resolution ``resolution`` (``simplex_lattice``) on every simplex, each point once
        (faces shared by simplices are not repeated)."""
        lattice = simplex_lattice(self.n_connectors + 1, resolution)
        rows = []
        for index in range(self.n_modes):
            weights = np.zeros((len(lattice), self.n_modes + self.n_connectors))
            weights[:, self.simplex(index)] = lattice
            rows.append(weights)
        return torch.as_tensor(np.unique(np.round(np.concatenate(rows), 12), axis=0))

    def evaluation_points(self, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        """The lattice points of resolution ``COMPLEX_EVALUATION_RESOLUTION`` on every simplex
        ``(P, D)``."""
        weights = self.lattice_weights(COMPLEX_EVALUATION_RESOLUTION)
        return weights.to(self.modes) @ self.vertices(tensors)

    def evaluation_solutions(self) -> torch.Tensor:
        """The lattice points at the modes."""
        weights = self.lattice_weights(COMPLEX_EVALUATION_RESOLUTION)
        return (weights[:, :self.n_modes] == 1).any(1)

    def describe(self) -> dict:
        return {"kind": self.kind, "modes": list(self.labels), "connectors": self.n_connectors,
                "samples": self.samples, "l2": self.l2, "volume_weight": self.volume_weight,
                "modes_sha256": _tensor_digest(self.modes)}

    def to(self, device: torch.device | str) -> SimplicialComplex:
        return SimplicialComplex(self.modes.to(device), self.n_connectors, samples=self.samples,
                                 l2=self.l2, volume_weight=self.volume_weight, labels=self.labels)


def simplex_volume(vertices: torch.Tensor) -> torch.Tensor:
    """m-dimensional volume of the simplex with vertices ``(m + 1, D)``: √det(E Eᵀ)/m!, E the
    ``(m, D)`` edge vectors from the first vertex (differentiable; 0 for a degenerate simplex)."""
    edges = vertices[1:] - vertices[0]
    gram = edges @ edges.T
    return torch.linalg.det(gram).clamp_min(1e-30).sqrt() / math.factorial(edges.shape[0])


def _tensor_digest(tensor: torch.Tensor) -> str:
    return hashlib.sha256(tensor.detach().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]
