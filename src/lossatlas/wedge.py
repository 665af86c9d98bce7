"""Wedge-model measurements (Fort & Jastrzebski 2019, "Large scale structure of neural network loss
landscapes"): long and short directions from a solution, and 2D cuts through the origin.

Parameter points are flat vectors ``(D,)``; sets of points ``(K, D)``; distances and in-plane
coordinates are in parameter-space (Euclidean) units; losses are mean train losses in nats. Every
point is evaluated by ``evaluate_points`` (one batched call per measurement or plane).

- Long and short directions: the loss along unit directions u from a solution θ_a, at distances t
  on a grid ``distance_grid``: random unit directions (plain Gaussian normalized over all of θ,
  not filter-normalized), the unit directions toward other solutions θ_j and the top Hessian
  eigenvectors. A direction's crossing distance (``stats.crossing_distance``) is the first grid t
  where the loss exceeds L(θ_a) + δ; the straight segment θ_a → θ_j gives a barrier height
  (``stats.barrier_height``).
- Wedge cuts: the loss on the plane through the origin and two points p1, p2 with the orthonormal
  basis of ``plane_basis`` (so in-plane coordinates are distances), and along each solution's ray
  the width of the low-loss interval (``stats.low_loss_width``) across the ray, in the plane, at
  radius scales s: the points s·θ + w·e⊥ (``ray_points``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .evaluate import PointMetrics, evaluate_points
from .functional import FunctionalModel
from .parameterizations import RandomProjection
from .stats import DIRECTION_KINDS

# --- long and short directions -----------------------------------------------------------------

def random_unit_directions(dim: int, count: int, seed: int) -> torch.Tensor:
    """``count`` random unit directions ``(count, D)`` (CPU, float32): i.i.d. standard Gaussian
    entries, each row scaled to unit norm over all D entries (all layers jointly; no filter
    normalization). They are the columns of ``RandomProjection(dim, count, seed)`` (the
    distribution of the random cuts of intrinsic-dimension training), generated on the CPU so
    the same seed gives the same directions on every device."""
    return RandomProjection(dim, count, seed).matrix().T.contiguous()


def distance_grid(max_distance: float, points: int) -> np.ndarray:
    """``points`` distances t_i = t_max (i / (points − 1))², i = 0 … points − 1: from 0 to
    ``max_distance``, quadratically spaced so that the grid is dense near the solution (where
    the short directions cross) and still reaches t_max (past the other solutions)."""
    if points < 2:
        raise ValueError(f"a distance grid needs at least 2 points, got {points}")
    if not max_distance > 0:
        raise ValueError(f"max_distance must be positive, got {max_distance}")
    return max_distance * np.linspace(0.0, 1.0, points) ** 2


def direction_points(theta: torch.Tensor, directions: torch.Tensor, distances) -> torch.Tensor:
    """Points θ + t_i u_m ``(M * T, D)`` for directions ``(M, D)`` and distances ``(T,)``; row
    ``m * T + i`` holds (u_m, t_i), so values reshape to ``(M, T)``."""
    t = torch.as_tensor(distances, dtype=theta.dtype, device=theta.device)
    points = theta + t[None, :, None] * directions.to(theta)[:, None, :]
    return points.reshape(-1, theta.numel())


def unit_directions_toward(theta: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor,
                                                                                 torch.Tensor]:
    """Unit directions ``(J, D)`` from θ toward each row of ``targets`` ``(J, D)`` and the
    distances ‖θ_j − θ‖ ``(J,)``."""
    offsets = targets.to(theta) - theta
    norms = offsets.norm(dim=1)
    if torch.any(norms == 0):
        raise ValueError("a target coincides with θ; it has no direction")
    return offsets / norms[:, None], norms


@dataclass
class LongShortProfiles:
    """Train loss and accuracy along ``M`` directions at ``distances`` ``(T,)``: ``losses``,
    ``accuracies`` ``(M, T)`` (rows in the order of ``kinds``, one of ``DIRECTION_KINDS`` each),
    and along the segments θ_a → θ_j at ``alphas`` ``(P,)``: ``segment_losses``,
    ``segment_accuracies`` ``(J, P)``; ``target_distances`` ‖θ_j − θ_a‖ ``(J,)``; ``bn_policy``
    and ``n_samples`` as ``PointMetrics`` reports them."""

    distances: np.ndarray
    kinds: list[str]
    losses: np.ndarray
    accuracies: np.ndarray
    alphas: np.ndarray
    segment_losses: np.ndarray
    segment_accuracies: np.ndarray
    target_distances: np.ndarray
    bn_policy: str
    n_samples: int


def long_short_profiles(model: nn.Module | FunctionalModel, theta: torch.Tensor,
                        random: torch.Tensor, targets: torch.Tensor, hessian: torch.Tensor,
                        distances, alphas, x: torch.Tensor, y: torch.Tensor,
                        **options) -> LongShortProfiles:
    """Loss profiles from θ ``(D,)`` along the unit ``random`` directions ``(R, D)``, the unit
    directions toward ``targets`` ``(J, D)`` and the unit ``hessian`` eigenvectors ``(H, D)`` at
    ``distances`` ``(T,)``, and along the segments θ + α (θ_j − θ) at ``alphas`` ``(P,)``, on
    ``(x, y)``, all in one ``evaluate_points`` call (``options`` go to it: ``bn_policy``,
    ``bn_data``, ``precision``, chunking, ``progress_file``)."""
    toward, norms = unit_directions_toward(theta, targets)
    directions = torch.cat([random.to(theta), toward, hessian.to(theta)])
    kinds = ([DIRECTION_KINDS[0]] * len(random) + [DIRECTION_KINDS[1]] * len(targets)
             + [DIRECTION_KINDS[2]] * len(hessian))
    t = np.asarray(distances, dtype=np.float64)
    a = np.asarray(alphas, dtype=np.float64)
    a_tensor = torch.as_tensor(a, dtype=theta.dtype, device=theta.device)
    segments = theta + a_tensor[None, :, None] * (targets.to(theta) - theta)[:, None, :]
    points = torch.cat([direction_points(theta, directions, t),
                        segments.reshape(-1, theta.numel())])
    metrics = evaluate_points(model, points, x, y, **options)
    n_line = len(directions) * len(t)
    shape_line, shape_segment = (len(directions), len(t)), (len(targets), len(a))
    return LongShortProfiles(
        t, kinds, metrics.loss[:n_line].reshape(shape_line),
        metrics.accuracy[:n_line].reshape(shape_line), a,
        metrics.loss[n_line:].reshape(shape_segment),
        metrics.accuracy[n_line:].reshape(shape_segment), norms.double().cpu().numpy(),
        metrics.bn_policy, metrics.n_samples)


# --- wedge cuts --------------------------------------------------------------------------------

def plane_basis(p1: torch.Tensor, p2: torch.Tensor) -> torch.Tensor:
    """Orthonormal basis ``(2, D)`` of the plane through the origin, p1 and p2 (Gram–Schmidt in
    float64, returned in p1's dtype): e1 = p1/‖p1‖, e2 = the unit part of p2 orthogonal to e1."""
    a, b = p1.double(), p2.double()
    if a.norm() == 0:
        raise ValueError("the first point of the plane is the origin")
    e1 = a / a.norm()
    rest = b - (b @ e1) * e1
    if rest.norm() <= 1e-9 * b.norm():
        raise ValueError("the two points are collinear with the origin; they span no plane")
    return torch.stack([e1, rest / rest.norm()]).to(p1.dtype)


def plane_coordinates(points: torch.Tensor, basis: torch.Tensor) -> np.ndarray:
    """Coordinates ``(K, 2)`` (float64) of points ``(K, D)`` on the orthonormal ``basis``
    ``(2, D)``."""
    return (points.double() @ basis.double().T).cpu().numpy()


def plane_grid(coordinates, grid: int, margin: float) -> tuple[np.ndarray, np.ndarray]:
    """``grid`` evenly spaced x and y coordinates covering the bounding box of ``coordinates``
    ``(K, 2)`` widened on each side by ``margin`` times its extent along that axis."""
    c = np.asarray(coordinates, dtype=np.float64)
    low, high = c.min(0), c.max(0)
    extent = high - low
    if np.any(extent <= 0):
        raise ValueError(f"the points {c.tolist()} span no 2D box")
    low, high = low - margin * extent, high + margin * extent
    return np.linspace(low[0], high[0], grid), np.linspace(low[1], high[1], grid)


def in_plane_normal(theta: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """The unit vector ``(D,)`` of the plane spanned by ``basis`` ``(2, D)`` orthogonal to θ (θ in
    that plane), e⊥ = (−c₂ e1 + c₁ e2)/‖c‖ for θ's coordinates c."""
    c = basis.double() @ theta.double()
    if c.norm() == 0:
        raise ValueError("θ is the origin; its ray has no normal")
    normal = (-c[1] * basis[0].double() + c[0] * basis[1].double()) / c.norm()
    return normal.to(theta.dtype)


def ray_offsets(theta_norm: float, offsets: int, offset_range: float) -> np.ndarray:
    """``offsets`` evenly spaced offsets w over ±``offset_range`` · ‖θ‖ (odd count: w = 0 is on
    the grid)."""
    if offsets < 3 or offsets % 2 == 0:
        raise ValueError(f"offsets must be odd and >= 3 so that w = 0 is on the grid, "
                         f"got {offsets}")
    grid = np.linspace(-offset_range * theta_norm, offset_range * theta_norm, offsets)
    grid[offsets // 2] = 0.0  # exactly (linspace can leave a rounding residue there)
    return grid


def ray_points(theta: torch.Tensor, normal: torch.Tensor, scales, offsets) -> torch.Tensor:
    """Points s_r θ + w_i e⊥ ``(S * W, D)`` for radius scales ``(S,)`` and offsets ``(W,)``; row
    ``r * W + i`` holds (s_r, w_i), so values reshape to ``(S, W)``."""
    s = torch.as_tensor(np.asarray(scales, dtype=np.float64)).to(theta)
    w = torch.as_tensor(np.asarray(offsets, dtype=np.float64)).to(theta)
    points = s[:, None, None] * theta + w[None, :, None] * normal.to(theta)
    return points.reshape(-1, theta.numel())


@dataclass
class PlaneCut:
    """The train loss on a plane through the origin and two points, and across solution rays in it.

    ``xcoordinates`` ``(X,)``, ``ycoordinates`` ``(Y,)``, ``train_loss`` (nats), ``train_acc``
    (percent) ``(Y, X)`` indexed ``[iy, ix]`` on the basis ``plane_basis(p1, p2)`` (the layout of
    ``landscape.ORIENTATION_2D``); ``point_coordinates`` ``(3, 2)`` of
    the origin, p1 and p2. Per ray r (a solution θ_r in the plane): ``ray_scales`` ``(S,)``,
    ``ray_offsets`` ``(R, W)``, ``ray_losses`` ``(R, S, W)`` at s·θ_r + w·e⊥_r, and
    ``ray_reference_loss`` ``(R,)`` = L(θ_r); ``ray_norms`` ‖θ_r‖ ``(R,)``."""

    xcoordinates: np.ndarray
    ycoordinates: np.ndarray
    train_loss: np.ndarray
    train_acc: np.ndarray
    point_coordinates: np.ndarray
    ray_scales: np.ndarray
    ray_offsets: np.ndarray
    ray_losses: np.ndarray
    ray_reference_loss: np.ndarray
    ray_norms: np.ndarray
    bn_policy: str
    n_samples: int

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        """Datasets for ``io.write_h5`` (tomgoldstein/loss-landscape names for the surface)."""
        return {name: getattr(self, name) for name in (
            "xcoordinates", "ycoordinates", "train_loss", "train_acc", "point_coordinates",
            "ray_scales", "ray_offsets", "ray_losses", "ray_reference_loss", "ray_norms")}


def plane_cut(model: nn.Module | FunctionalModel, p1: torch.Tensor, p2: torch.Tensor,
              rays: torch.Tensor, x: torch.Tensor, y: torch.Tensor, *, grid: int, margin: float,
              scales, offsets: int, offset_range: float, **options) -> PlaneCut:
    """Train loss on the ``grid`` × ``grid`` plane through the origin, p1 and p2 (``plane_grid``
    with ``margin`` around the three points) and, for each ray θ_r of ``rays`` ``(R, D)`` (points
    of the plane), at s·θ_r + w·e⊥_r for the radius ``scales`` and ``ray_offsets(‖θ_r‖, offsets,
    offset_range)``, plus θ_r itself; one ``evaluate_points`` call on ``(x, y)`` (``options`` go
    to it)."""
    basis = plane_basis(p1, p2)
    corners = plane_coordinates(torch.stack([torch.zeros_like(p1), p1, p2]), basis)
    xs, ys = plane_grid(corners, grid, margin)
    gx, gy = np.meshgrid(xs, ys)
    coefficients = torch.as_tensor(np.stack([gx.ravel(), gy.ravel()], 1), dtype=p1.dtype,
                                   device=p1.device)
    norms = rays.double().norm(dim=1).cpu().numpy()
    offset_grids = np.stack([ray_offsets(float(n), offsets, offset_range) for n in norms])
    ray_sets = [ray_points(theta, in_plane_normal(theta, basis), scales, offset_grids[r])
                for r, theta in enumerate(rays)]
    points = torch.cat([coefficients @ basis, rays.to(p1), *ray_sets])
    metrics: PointMetrics = evaluate_points(model, points, x, y, **options)
    n_grid, n_rays = grid * grid, len(rays)
    shape = (n_rays, len(np.asarray(scales)), offsets)
    return PlaneCut(xs, ys, metrics.loss[:n_grid].reshape(grid, grid),
                    100 * metrics.accuracy[:n_grid].reshape(grid, grid), corners,
                    np.asarray(scales, dtype=np.float64), offset_grids,
                    metrics.loss[n_grid + n_rays:].reshape(shape),
                    metrics.loss[n_grid:n_grid + n_rays], norms, metrics.bn_policy,
                    metrics.n_samples)
