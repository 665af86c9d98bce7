"""Parameterizations θ = f(tensors): what the trainer optimizes, mapped to a flat θ ``(D,)``.

A parameterization owns a small dict of trainable tensors and maps them (and, for parameterizations
that need it, a random draw made once per minibatch) differentiably to θ, which
``FunctionalModel`` turns into a network. The trainer (``lossatlas.train.train_run``) optimizes the
trainable tensors of any parameterization with one loop:

- ``FullSpace``: θ itself is trained (ordinary training);
- ``RandomSubspace``: θ = θ₀ + A z with z ``(d,)`` starting at 0 and A a fixed random ``(D, d)``
  matrix (intrinsic dimension, Li, Farkhoor, Liu & Yosinski 2018; the random "cuts" of Fort &
  Jastrzebski 2019).

A parameterization's ``describe()`` is part of the run's resume fingerprint and of its outputs.
"""

from __future__ import annotations

import hashlib
import math
from typing import Protocol

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
        """θ ``(D,)`` at the trainable ``tensors`` (differentiable); ``sample=None`` gives the
        point that checkpoints and per-epoch metrics describe."""

    def describe(self) -> dict:
        """JSON-able settings that identify the parameterization."""

    def to(self, device: torch.device | str) -> Parameterization:
        """The same parameterization with its fixed tensors on ``device``."""


class FullSpace:
    """θ is the trainable tensor itself (``{"theta": (D,)}``), starting at ``theta0``."""

    kind = "full"

    def __init__(self, theta0: torch.Tensor):
        self.theta0 = theta0.detach()

    def initial_tensors(self) -> dict[str, torch.Tensor]:
        return {"theta": self.theta0.clone()}

    def sample(self, generator: torch.Generator) -> None:
        return None

    def theta(self, tensors: dict[str, torch.Tensor], sample: None = None) -> torch.Tensor:
        return tensors["theta"]

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
        squares = torch.zeros(dim, device=self.device)
        for block in self._gaussian_blocks():
            squares += block.pow(2).sum(0)
        self.column_norms = squares.sqrt()
        if self.materialized:
            gaussian = torch.cat(list(self._gaussian_blocks()))
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

    def apply_transpose(self, v: torch.Tensor) -> torch.Tensor:
        """Aᵀ v ``(d,)`` for v ``(D,)``."""
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
    """A z with A regenerated block by block in the forward and the backward pass."""

    @staticmethod
    def forward(z: torch.Tensor, projection: RandomProjection) -> torch.Tensor:
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

    def apply_transpose(self, v: torch.Tensor) -> torch.Tensor:
        return self.matrix_.T @ v

    def describe(self) -> dict:
        return {"dim": self.dim, "projection": "given matrix",
                "matrix_sha256": hashlib.sha256(self.matrix_.cpu().numpy().tobytes()).hexdigest()}

    def to(self, device: torch.device | str) -> MatrixProjection:
        return MatrixProjection(self.matrix_.to(device))


class RandomSubspace:
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

    def sample(self, generator: torch.Generator) -> None:
        return None

    def theta(self, tensors: dict[str, torch.Tensor], sample: None = None) -> torch.Tensor:
        return self.theta0 + self.projection.apply(tensors["z"])

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
    return RandomSubspace(theta0, RandomProjection(theta0.numel(), dim, seed, orthonormal=orthonormal,
                                                   materialize=materialize,
                                                   memory_budget_bytes=budget, device=device))


def scale_parameters_(model: torch.nn.Module, scale: float) -> None:
    """Multiply every trainable parameter of ``model`` (weights and biases) by ``scale`` in place,
    so ‖θ₀‖ becomes ``scale``·‖θ₀‖ (inits at radius scale α, Fort & Scherlis 2019)."""
    if not (scale > 0 and math.isfinite(scale)):
        raise ValueError(f"init scale must be a positive finite number, got {scale}")
    with torch.no_grad():
        for param in model.parameters():
            param.mul_(scale)
