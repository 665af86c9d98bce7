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

from dataclasses import dataclass

import numpy as np
import torch

from .landscape import plane_points
from .parameterizations import SimplicialComplex, simplex_lattice
from .wedge import plane_basis, plane_coordinates, plane_grid





# --- sampling simplices --------------------------------------------------------------------------


def complex_weights(structure: SimplicialComplex, resolution: int) -> np.ndarray:
    """Weights ``(P, N + k)`` over all vertices of ``structure`` (modes, then connectors) of the
    lattice points of every simplex, each point once (faces shared by simplices are not
    repeated)."""
    return structure.lattice_weights(resolution).numpy()


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
    return p0, plane_basis(p1 - p0, p2 - p0)


# --- ensembles -----------------------------------------------------------------------------------






def dirichlet_weights(count: int, vertices: int, seed: int) -> np.ndarray:
    """``count`` seeded draws ``(count, vertices)`` from the flat Dirichlet(1) distribution."""
    return np.random.default_rng(seed).dirichlet(np.ones(vertices), size=count)




@dataclass(frozen=True)
class PlaneGrid:
    """A ``grid`` × ``grid`` grid on the plane through three points: ``xcoordinates``,
    ``ycoordinates`` ``(G,)`` (distances on the orthonormal basis of ``plane_through``), the grid's
    ``points`` ``(G * G, D)`` (row ``iy * G + ix``, so values reshape to ``(G, G)`` indexed
    ``[iy, ix]``, ``landscape.ORIENTATION_2D``), and ``corners`` ``(3, 2)``, the three points'
    coordinates."""

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
