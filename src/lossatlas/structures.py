"""Measurements on low-loss structures: mode-connecting curves (Garipov et al. 2018), the low-loss
complex through N solutions (Benton et al. 2021; Fort & Jastrzebski 2019), and ensembles of their
points (Fort, Hu & Lakshminarayanan 2019).

Points are flat parameter vectors ``(D,)``; sets of points ``(K, D)``; losses are mean losses in
nats, errors fractions in [0, 1]. Every loss or prediction goes through the batched evaluator
(``evaluate_points`` / ``predict_points``); with batch norm the caller passes
``bn_policy="recompute"`` so that the statistics are recomputed from training data at every point
(an endpoint's statistics are wrong anywhere else on a curve; Garipov et al.).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch

from .landscape import plane_points
from .parameterizations import SimplicialComplex
from .wedge import plane_coordinates, plane_grid

# --- profiles along paths ------------------------------------------------------------------------


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


# --- sampling simplices --------------------------------------------------------------------------


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


def complex_weights(structure: SimplicialComplex, resolution: int) -> np.ndarray:
    """Weights ``(P, N + k)`` over all vertices of ``structure`` (modes, then connectors) of the
    lattice points of every simplex, each point once (faces shared by simplices are not
    repeated)."""
    lattice = simplex_lattice(structure.n_connectors + 1, resolution)
    rows = []
    for index in range(structure.n_modes):
        weights = np.zeros((len(lattice), structure.n_modes + structure.n_connectors))
        weights[:, structure.simplex(index)] = lattice
        rows.append(weights)
    return np.unique(np.round(np.concatenate(rows), 12), axis=0)


def hull_weights(n_modes: int, n_vertices: int, resolution: int) -> np.ndarray:
    """Weights ``(P, n_vertices)`` of the lattice points of the linear simplex (convex hull) of the
    first ``n_modes`` vertices (the solutions), zero on the others."""
    lattice = simplex_lattice(n_modes, resolution)
    return np.concatenate([lattice, np.zeros((len(lattice), n_vertices - n_modes))], axis=1)


def segment_weights(n_vertices: int, edges: list[tuple[int, int]], points: int) -> np.ndarray:
    """Weights ``(E * points, n_vertices)`` of ``points`` evenly spaced points on each straight edge
    (i, j) of ``edges`` from vertex i (t = 0) to vertex j (t = 1); row ``e * points + p``."""
    t = np.linspace(0.0, 1.0, points)
    weights = np.zeros((len(edges), points, n_vertices))
    for e, (i, j) in enumerate(edges):
        weights[e, :, i] += 1 - t
        weights[e, :, j] += t
    return weights.reshape(-1, n_vertices)


def points_from_weights(weights, vertices: torch.Tensor) -> torch.Tensor:
    """Points ``(P, D)`` = ``weights`` ``(P, V)`` @ ``vertices`` ``(V, D)``, in the vertices'
    dtype and device."""
    return torch.as_tensor(np.asarray(weights), dtype=vertices.dtype,
                           device=vertices.device) @ vertices


def plane_through(p0: torch.Tensor, p1: torch.Tensor, p2: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Origin p0 and orthonormal basis ``(2, D)`` (Gram–Schmidt in float64, e1 along p1 − p0) of
    the plane through three points, so in-plane coordinates are Euclidean distances (Garipov et
    al.'s plane plots)."""
    u, v = (p1 - p0).double(), (p2 - p0).double()
    if u.norm() == 0:
        raise ValueError("the first two points of the plane coincide")
    e1 = u / u.norm()
    rest = v - (v @ e1) * e1
    if rest.norm() <= 1e-9 * v.norm():
        raise ValueError("the three points are collinear; they span no plane")
    return p0, torch.stack([e1, rest / rest.norm()]).to(p0.dtype)


# --- ensembles -----------------------------------------------------------------------------------


def ensemble_accuracy(probabilities: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Test accuracy ``(K,)`` of the ensembles of the first 1, 2, …, K members: the arg-max of the
    mean softmax output over the members, ``probabilities`` ``(K, N, C)``, against labels
    ``y`` ``(N,)``."""
    running = probabilities.double().cumsum(0)
    return (running.argmax(-1) == y.cpu()[None]).double().mean(-1).numpy()


def pairwise_disagreement(probabilities: torch.Tensor) -> float:
    """Mean over pairs of members of the fraction of inputs whose arg-max predictions differ
    (Fort, Hu & Lakshminarayanan 2019), for ``probabilities`` ``(K, N, C)``, K ≥ 2."""
    if probabilities.shape[0] < 2:
        raise ValueError("disagreement needs at least 2 members")
    predictions = probabilities.argmax(-1)
    pairs = list(itertools.combinations(range(predictions.shape[0]), 2))
    return float(np.mean([(predictions[i] != predictions[j]).double().mean().item()
                          for i, j in pairs]))


def dirichlet_weights(count: int, vertices: int, seed: int) -> np.ndarray:
    """``count`` seeded draws ``(count, vertices)`` from the flat Dirichlet(1) distribution."""
    return np.random.default_rng(seed).dirichlet(np.ones(vertices), size=count)


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


@dataclass(frozen=True)
class PlaneGrid:
    """A ``grid`` × ``grid`` grid on the plane through three points: ``xcoordinates``,
    ``ycoordinates`` ``(G,)`` (distances on the orthonormal basis of ``plane_through``), the grid's
    ``points`` ``(G * G, D)`` (row ``ix * G + iy``, so values reshape to ``(G, G)`` indexed
    ``[ix, iy]``), and ``corners`` ``(3, 2)``, the three points' coordinates."""

    xcoordinates: np.ndarray
    ycoordinates: np.ndarray
    points: torch.Tensor
    corners: np.ndarray
    origin: torch.Tensor
    basis: torch.Tensor

    def coordinates(self, points: torch.Tensor) -> np.ndarray:
        """In-plane coordinates ``(K, 2)`` of points ``(K, D)`` (their projection on the plane)."""
        return plane_coordinates(points - self.origin, self.basis)


def plane_grid_through(p0: torch.Tensor, p1: torch.Tensor, p2: torch.Tensor, grid: int,
                       margin: float) -> PlaneGrid:
    """``PlaneGrid`` on the plane through p0, p1, p2 covering their bounding box widened by
    ``margin`` times its extent on each side (Garipov et al.'s plane plots: 21 × 21, margin 0.2)."""
    origin, basis = plane_through(p0, p1, p2)
    corners = plane_coordinates(torch.stack([p0, p1, p2]) - origin, basis)
    xs, ys = plane_grid(corners, grid, margin)
    return PlaneGrid(xs, ys, plane_points(origin, basis[0], basis[1], xs, ys), corners, origin,
                     basis)
