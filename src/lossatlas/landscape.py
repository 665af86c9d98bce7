"""Loss-landscape measurements as compositions of ``evaluate_points``: directions, lines, planes,
1D/2D surfaces (Li et al. 2018), trajectory PCA, MLI metrics (Goodfellow et al. 2015; Lucas et al.
2021), a walk with SGD (Xing et al. 2018) and the roughness index (Wu, Du, Chen et al. 2021).

Parameter points are flat vectors ``(D,)``; sets of points ``(K, D)``. Surfaces are laid out as
tomgoldstein/loss-landscape's plotting scripts read them: its dataset names (``xcoordinates``,
``ycoordinates``, ``train_loss``, ``train_acc``, ``test_loss``, ``test_acc``), 2D arrays of shape
``(len(ycoordinates), len(xcoordinates))`` indexed ``[iy, ix]`` (the ``Z`` of matplotlib's
``contour(X, Y, Z)`` with ``X, Y = meshgrid(xcoordinates, ycoordinates)``), losses in nats and
accuracies in percent (0-100); the attributes ``orientation``, ``loss_units`` and
``accuracy_units`` say so in each file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from .evaluate import evaluate_train_test
from .functional import FunctionalModel
from .io import read_h5, write_h5
from .params import ParamLayout, random_direction

if TYPE_CHECKING:
    import pandas as pd

ORIENTATION_2D = ("values[iy, ix] = f(theta + xcoordinates[ix] * d1 + ycoordinates[iy] * d2), "
                  "shape (len(ycoordinates), len(xcoordinates)) as contour(*meshgrid(x, y), values) "
                  "reads it")
ORIENTATION_1D = "values[ix] = f(theta + xcoordinates[ix] * d1)"
UNITS = {"loss_units": "nats (mean cross-entropy)", "accuracy_units": "percent (0-100)"}


# --- directions -----------------------------------------------------------------------------

def random_directions(theta: torch.Tensor, layout: ParamLayout, count: int, seed: int,
                      method: str = "filter", ignore_biasbn: bool = True) -> torch.Tensor:
    """``count`` Gaussian directions ``(count, D)`` normalized to θ by ``method`` (filter
    normalization by default, biases and BN parameters zeroed), drawn from one generator seeded
    with ``seed`` (Li et al. 2018)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.stack([random_direction(theta.cpu(), layout, generator, method, ignore_biasbn)
                        for _ in range(count)]).to(theta.device)


def shared_directions(layout: ParamLayout, seed: int, roughness_directions: int) -> torch.Tensor:
    """The Gaussian directions every surface and roughness profile of a config shares,
    ``(2 + roughness_directions, D)`` float32 on the CPU: rows 0 and 1 the surface directions δ, η,
    the rest the roughness directions. Unnormalized (each use filter-normalizes them to its own
    solution's θ, Li et al. 2018) and drawn from one generator seeded with ``seed``, so every job
    that draws them gets the same ones."""
    return random_directions(torch.zeros(layout.dim), layout, 2 + roughness_directions, seed,
                             method="none", ignore_biasbn=False)


def checkpoint_plane(theta_a: torch.Tensor, theta_b: torch.Tensor,
                     theta_c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Plane through three checkpoints: origin θ_a and directions θ_b − θ_a, θ_c − θ_a, so that
    the checkpoints sit at coordinates (0, 0), (1, 0) and (0, 1)."""
    return theta_a, theta_b - theta_a, theta_c - theta_a


@dataclass(frozen=True)
class TrajectoryPCA:
    """Top-2 principal directions ``(2, D)`` (unit norm) of a trajectory's offsets from its last
    point, their explained variance ratios ``(2,)`` and the path's coordinates ``(T, 2)`` in the
    plane through the last point (least squares, ``project_onto_plane``)."""

    directions: torch.Tensor
    explained_variance_ratio: np.ndarray
    coordinates: np.ndarray


def trajectory_pca(trajectory: torch.Tensor) -> TrajectoryPCA:
    """PCA of {θ_t − θ_T} for a trajectory ``(T, D)`` ending at θ_T (Li et al. 2018): the offsets
    are centered over t (as the reference implementation's PCA does) and decomposed by SVD in
    float64. Each component's sign is chosen so that its entry of largest magnitude is positive."""
    if trajectory.dim() != 2 or trajectory.shape[0] < 3:
        raise ValueError(f"trajectory must have shape (T >= 3, D), got {tuple(trajectory.shape)}")
    offsets = (trajectory - trajectory[-1]).double()
    centered = offsets - offsets.mean(0)
    _, singular, vh = torch.linalg.svd(centered, full_matrices=False)
    variance = singular**2
    components = vh[:2]
    signs = torch.sign(components.gather(1, components.abs().argmax(1, keepdim=True)))
    components = components * signs
    ratio = (variance[:2] / variance.sum()).numpy()
    directions = components.to(trajectory.dtype)
    coordinates = project_onto_plane(trajectory, trajectory[-1], directions[0], directions[1])
    return TrajectoryPCA(directions, ratio, coordinates)


def project_onto_plane(points: torch.Tensor, origin: torch.Tensor, d1: torch.Tensor,
                       d2: torch.Tensor) -> np.ndarray:
    """Least-squares coordinates ``(K, 2)`` of points ``(K, D)`` in the plane origin + a d1 + b d2
    (the directions need not be orthogonal), computed in float64."""
    basis = torch.stack([d1, d2], 1).double()
    gram = basis.T @ basis
    if torch.linalg.matrix_rank(gram) < 2:
        raise ValueError("plane directions are linearly dependent")
    rhs = (points.double() - origin.double()) @ basis
    return torch.linalg.solve(gram, rhs.T).T.cpu().numpy()


def pca_arrays(pca: TrajectoryPCA) -> dict[str, np.ndarray]:
    """The datasets under which tomgoldstein/loss-landscape's ``plot_2D.py`` reads a projected path
    and its PCA: ``proj_xcoord``, ``proj_ycoord`` ``(T,)`` (the path's coordinates) and
    ``explained_variance_ratio_`` ``(2,)`` (scikit-learn's name)."""
    return {"proj_xcoord": pca.coordinates[:, 0], "proj_ycoord": pca.coordinates[:, 1],
            "explained_variance_ratio_": pca.explained_variance_ratio}


def save_directions(path: str | os.PathLike, directions: torch.Tensor, layout: ParamLayout,
                    attrs: dict[str, object], arrays: dict[str, np.ndarray] | None = None) -> None:
    """Write directions ``(n, D)`` to their own HDF5 file (dataset ``directions``, plus the
    caller's ``arrays``) with the parameter names and shapes and the caller's ``attrs`` (kind,
    seed, normalization, ...). Rows 0 and 1 are also written as tomgoldstein/loss-landscape's
    ``net_plotter.load_directions`` reads a direction file: groups ``xdirection`` and
    ``ydirection``, each one dataset ``"0"``, ``"1"``, ... per parameter tensor in the model's
    parameter order, shaped as the parameter."""
    if directions.dim() != 2 or directions.shape[1] != layout.dim:
        raise ValueError(f"directions must have shape (n, {layout.dim}), got {tuple(directions.shape)}")
    directions = directions.detach().cpu().float()
    per_tensor = {f"{group}/{index}": tensor
                  for group, row in zip(("xdirection", "ydirection"), directions)
                  for index, tensor in enumerate(layout.unflatten(row).values())}
    write_h5(path, {"directions": directions, **per_tensor, **(arrays or {})},
             {**attrs, "param_names": list(layout.names),
              "param_shapes": [list(s) for s in layout.shapes]})


def load_directions(path: str | os.PathLike, layout: ParamLayout) -> tuple[torch.Tensor, dict]:
    """Directions ``(n, D)`` and attributes saved by ``save_directions``; the stored parameter
    names and shapes must match ``layout``."""
    arrays, attrs = read_h5(path)
    directions = torch.from_numpy(arrays["directions"])
    names = json.loads(attrs["param_names"])
    shapes = [tuple(s) for s in json.loads(attrs["param_shapes"])]
    if names != list(layout.names) or shapes != [tuple(s) for s in layout.shapes]:
        raise ValueError(f"directions in {path} were made for another architecture")
    return directions, attrs


# --- points ---------------------------------------------------------------------------------

def line_points(theta: torch.Tensor, direction: torch.Tensor, alphas) -> torch.Tensor:
    """Points θ + α_k d, shape ``(len(alphas), D)``."""
    alphas = torch.as_tensor(alphas, dtype=theta.dtype, device=theta.device)
    return theta + alphas[:, None] * direction


def plane_points_at(theta: torch.Tensor, d1: torch.Tensor, d2: torch.Tensor, x, y) -> torch.Tensor:
    """Points θ + x_k d1 + y_k d2 for paired coordinates ``x``, ``y`` ``(K,)``: shape ``(K, D)``."""
    x = torch.as_tensor(x, dtype=theta.dtype, device=theta.device).reshape(-1, 1)
    y = torch.as_tensor(y, dtype=theta.dtype, device=theta.device).reshape(-1, 1)
    return theta + x * d1 + y * d2


def plane_points(theta: torch.Tensor, d1: torch.Tensor, d2: torch.Tensor, xs, ys) -> torch.Tensor:
    """Points θ + x d1 + y d2 on the grid xs × ys, shape ``(len(ys) * len(xs), D)``; row
    ``iy * len(xs) + ix`` holds (xs[ix], ys[iy]), so values reshape to ``(len(ys), len(xs))``
    indexed ``[iy, ix]`` (``ORIENTATION_2D``)."""
    xs = torch.as_tensor(xs, dtype=theta.dtype, device=theta.device)
    ys = torch.as_tensor(ys, dtype=theta.dtype, device=theta.device)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return plane_points_at(theta, d1, d2, gx.reshape(-1), gy.reshape(-1))


# --- surfaces -------------------------------------------------------------------------------

@dataclass
class Surface:
    """A 1D or 2D surface: ``arrays`` (tomgoldstein/loss-landscape names, orientation and units)
    and ``attrs`` (settings, BN policy, orientation, units), ready for ``io.write_h5(path,
    surface.arrays, surface.attrs)``."""

    arrays: dict[str, np.ndarray]
    attrs: dict[str, object] = field(default_factory=dict)


@dataclass
class SurfacePart:
    """Metrics of the flat grid points ``start:stop`` (order of ``plane_points``) of a 2D grid."""

    start: int
    stop: int
    xcoordinates: np.ndarray
    ycoordinates: np.ndarray
    metrics: dict[str, np.ndarray]
    attrs: dict[str, object] = field(default_factory=dict)


def grid_part(n_points: int, part: int, n_parts: int) -> tuple[int, int]:
    """Index range ``[start, stop)`` of part ``part`` (0-based) of ``n_parts`` nearly equal
    contiguous parts of ``n_points`` grid points."""
    if not 0 <= part < n_parts:
        raise ValueError(f"part {part} out of range for {n_parts} parts")
    return part * n_points // n_parts, (part + 1) * n_points // n_parts


def _evaluate(model, points, data, options) -> tuple[dict[str, np.ndarray], str]:
    """Losses (nats) and accuracies (percent) of the points on the training and test sets."""
    metrics = evaluate_train_test(model, points, *data, **options)
    arrays = {"train_loss": metrics.train.loss, "train_acc": 100 * metrics.train.accuracy,
              "test_loss": metrics.test.loss, "test_acc": 100 * metrics.test.accuracy}
    return arrays, metrics.train.bn_policy


def surface_1d(model: nn.Module | FunctionalModel, theta: torch.Tensor, direction: torch.Tensor,
               alphas, data: tuple, **options) -> Surface:
    """f(α) = L(θ + α d) on the training and test sets; ``data`` is ``(x_train, y_train, x_test,
    y_test)``; ``options`` go to ``evaluate_train_test`` (``bn_policy``, ``n_samples``, ``seed``,
    chunking, ``progress_file``)."""
    arrays, policy = _evaluate(model, line_points(theta, direction, alphas), data, options)
    xs = np.asarray(torch.as_tensor(alphas).cpu(), dtype=np.float64)
    return Surface({"xcoordinates": xs, **arrays},
                   {"orientation": ORIENTATION_1D, **UNITS, "bn_policy": policy})


def surface_1d_table(surface: Surface) -> pd.DataFrame:
    """A 1D ``Surface`` as a tidy table: one row per (α, split) with columns ``alpha``, ``split``
    (train/test), ``loss`` (nats), ``accuracy`` ([0, 1], the surface's percent / 100) and
    ``bn_policy``."""
    import pandas as pd

    arrays = surface.arrays
    return pd.DataFrame([
        {"alpha": float(alpha), "split": split, "loss": float(arrays[f"{split}_loss"][i]),
         "accuracy": float(arrays[f"{split}_acc"][i]) / 100, "bn_policy": surface.attrs["bn_policy"]}
        for split in ("train", "test") for i, alpha in enumerate(arrays["xcoordinates"])])


def surface_2d_part(model: nn.Module | FunctionalModel, theta: torch.Tensor, d1: torch.Tensor,
                    d2: torch.Tensor, xs, ys, data: tuple, part: int = 0, n_parts: int = 1,
                    **options) -> SurfacePart:
    """Part ``part`` of ``n_parts`` of the 2D surface f(x, y) = L(θ + x d1 + y d2) (see
    ``surface_2d``); merge the parts with ``merge_surface_parts``."""
    xs_np = np.asarray(torch.as_tensor(xs).cpu(), dtype=np.float64)
    ys_np = np.asarray(torch.as_tensor(ys).cpu(), dtype=np.float64)
    start, stop = grid_part(len(xs_np) * len(ys_np), part, n_parts)
    iy, ix = np.divmod(np.arange(start, stop), len(xs_np))
    points = plane_points_at(theta, d1, d2, xs_np[ix], ys_np[iy])
    metrics, policy = _evaluate(model, points, data, options)
    return SurfacePart(start, stop, xs_np, ys_np, metrics, {"bn_policy": policy})


def merge_surface_parts(parts: list[SurfacePart]) -> Surface:
    """Assemble parts that together cover a grid exactly once into a 2D ``Surface``."""
    if not parts:
        raise ValueError("no surface parts to merge")
    parts = sorted(parts, key=lambda p: p.start)
    xs, ys = parts[0].xcoordinates, parts[0].ycoordinates
    n_points = len(xs) * len(ys)
    expected = 0
    for p in parts:
        if not (np.array_equal(p.xcoordinates, xs) and np.array_equal(p.ycoordinates, ys)):
            raise ValueError("surface parts come from different grids")
        if p.start != expected:
            raise ValueError(f"surface parts leave a gap or overlap at grid index {expected}")
        expected = p.stop
    if expected != n_points:
        raise ValueError(f"surface parts cover {expected} of {n_points} grid points")
    arrays = {name: np.concatenate([p.metrics[name] for p in parts]).reshape(len(ys), len(xs))
              for name in parts[0].metrics}
    return Surface({"xcoordinates": xs, "ycoordinates": ys, **arrays},
                   {**parts[0].attrs, "orientation": ORIENTATION_2D, **UNITS})


def save_merged_surface(path: str | os.PathLike, parts: list[SurfacePart],
                        attrs: dict) -> str | None:
    """Write the 2D surface that ``parts`` cover to HDF5 (``merge_surface_parts``; ``attrs``, e.g.
    the settings and the run, under the surface's own attributes); when a part was skipped (its
    ``status`` not ``ok``), an empty file with ``attrs`` and that status instead, which is returned
    (``None`` when the surface was written)."""
    statuses = {part.attrs["status"] for part in parts}
    if statuses != {"ok"}:
        skipped = sorted(statuses - {"ok"})[0]
        write_h5(path, {}, {**attrs, "status": skipped})
        return skipped
    surface = merge_surface_parts(parts)
    write_h5(path, surface.arrays, {**attrs, **surface.attrs})
    return None


def save_surface_part(path: str | os.PathLike, part: SurfacePart) -> None:
    """Write a ``SurfacePart`` to HDF5 (its grid, metrics, range and attributes)."""
    write_h5(path, {"xcoordinates": part.xcoordinates, "ycoordinates": part.ycoordinates,
                    **part.metrics}, {**part.attrs, "start": part.start, "stop": part.stop})


def load_surface_part(path: str | os.PathLike) -> SurfacePart:
    """Read a ``SurfacePart`` written by ``save_surface_part``."""
    arrays, attrs = read_h5(path)
    start, stop = int(attrs.pop("start")), int(attrs.pop("stop"))
    xs, ys = arrays.pop("xcoordinates"), arrays.pop("ycoordinates")
    return SurfacePart(start, stop, xs, ys, arrays, attrs)


def surface_2d(model: nn.Module | FunctionalModel, theta: torch.Tensor, d1: torch.Tensor,
               d2: torch.Tensor, xs, ys, data: tuple, **options) -> Surface:
    """f(x, y) = L(θ + x d1 + y d2) on the grid xs × ys (any sizes) on the training and test
    sets; arrays ``(len(ys), len(xs))`` indexed ``[iy, ix]`` (``ORIENTATION_2D``), accuracies in
    percent. ``data`` and ``options`` as in ``surface_1d``."""
    return merge_surface_parts([surface_2d_part(model, theta, d1, d2, xs, ys, data, **options)])


# --- monotonic linear interpolation -----------------------------------------------------------

@dataclass(frozen=True)
class MLIMetrics:
    """MLI summary of one init→final line: ``delta`` largest rise (nats), ``monotonic``
    (``delta <= tolerance``), ``distance`` ‖θ_T − θ₀‖ and ``relative_distance`` ‖θ_T − θ₀‖/‖θ₀‖."""

    delta: float
    monotonic: bool
    distance: float
    relative_distance: float


def largest_rise(values) -> float:
    """Δ = max_j (v_j − min_{i<j} v_i), clipped at 0: the largest increase of a sequence over any
    earlier value (0 for a non-increasing sequence)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size < 2:
        return 0.0
    running_min = np.minimum.accumulate(v)[:-1]
    return float(max(0.0, np.max(v[1:] - running_min)))


def mli_metrics(alphas, losses, theta0: torch.Tensor, theta_final: torch.Tensor, *,
                tolerance: float) -> MLIMetrics:
    """MLI metrics (Lucas et al. 2021) of the loss on the line (1 − α) θ₀ + α θ_T: Δ is
    ``largest_rise`` of the losses at the α in [0, 1] in increasing α order (extrapolated points
    are ignored); the line is monotonic when Δ ≤ ``tolerance`` (nats)."""
    alphas = np.asarray(alphas, dtype=np.float64)
    losses = np.asarray(losses, dtype=np.float64)
    if alphas.shape != losses.shape:
        raise ValueError(f"alphas {alphas.shape} and losses {losses.shape} differ in shape")
    inside = (alphas >= 0) & (alphas <= 1)
    order = np.argsort(alphas[inside], kind="stable")
    delta = largest_rise(losses[inside][order])
    distance = float((theta_final - theta0).double().norm())
    return MLIMetrics(delta, delta <= tolerance, distance, distance / float(theta0.double().norm()))


# --- a walk with SGD ------------------------------------------------------------------------

def segment_points(iterates: torch.Tensor, points_per_segment: int) -> torch.Tensor:
    """Points on the segments between consecutive iterates ``(T, D)`` (Xing et al. 2018), each
    segment sampled at ``points_per_segment`` evenly spaced points with both ends included; shared
    ends are stored once: shape ``((T − 1)(n − 1) + 1, D)``, segment t at rows
    ``t (n − 1) ... t (n − 1) + n − 1`` (see ``segment_profiles``)."""
    n = points_per_segment
    if n < 2 or iterates.dim() != 2 or iterates.shape[0] < 2:
        raise ValueError(f"need iterates (T >= 2, D) and points_per_segment >= 2, got "
                         f"{tuple(iterates.shape)} and {n}")
    t = torch.linspace(0, 1, n, dtype=iterates.dtype, device=iterates.device)[:-1, None]
    inner = [(1 - t) * a + t * b for a, b in zip(iterates[:-1], iterates[1:])]
    return torch.cat(inner + [iterates[-1:]])


def segment_profiles(values, n_segments: int, points_per_segment: int) -> np.ndarray:
    """Values at ``segment_points`` rearranged to ``(n_segments, points_per_segment)``."""
    values = np.asarray(values)
    n = points_per_segment
    if values.shape != ((n - 1) * n_segments + 1,):
        raise ValueError(f"expected {(n - 1) * n_segments + 1} values, got {values.shape}")
    index = np.arange(n_segments)[:, None] * (n - 1) + np.arange(n)[None, :]
    return values[index]


@dataclass(frozen=True)
class SegmentMinima:
    """Per segment: position ``argmin`` ``(S,)`` of its lowest value and whether it lies strictly
    inside (``interior``); ``interior_fraction`` over segments."""

    argmin: np.ndarray
    interior: np.ndarray
    interior_fraction: float


def segment_minima(profiles: np.ndarray) -> SegmentMinima:
    """Where each segment's minimum lies, for profiles ``(S, n)`` from ``segment_profiles``."""
    argmin = np.argmin(profiles, axis=1)
    interior = (argmin > 0) & (argmin < profiles.shape[1] - 1)
    return SegmentMinima(argmin, interior, float(interior.mean()))


# --- roughness index ------------------------------------------------------------------------

@dataclass(frozen=True)
class Roughness:
    """``normalized_tv`` ``(M,)`` per direction, their ``mean`` and ``std``, and
    ``roughness_index`` = std / mean."""

    normalized_tv: np.ndarray
    mean: float
    std: float
    roughness_index: float


def roughness_index(alphas, profiles) -> Roughness:
    """Roughness of M 1D profiles ``(M, A)`` f_m(α) = L(θ* + α d_m) around a minimizer θ*
    (Wu, Du, Chen et al. 2021), on a grid ``alphas`` ``(A,)`` that contains α = 0.

    Normalized total variation of a profile: T_m = Σ_j |f_m(α_{j+1}) − f_m(α_j)| divided by
    |f_m(α_first) − f_m(0)| + |f_m(α_last) − f_m(0)|, so T_m = 1 exactly when the profile is
    monotone on each side of α = 0 and grows with its oscillations. Reported: the mean and the
    (population) standard deviation of T over directions and the index std / mean."""
    alphas = np.asarray(alphas, dtype=np.float64)
    profiles = np.asarray(profiles, dtype=np.float64)
    if profiles.ndim != 2 or profiles.shape[1] != alphas.size:
        raise ValueError(f"profiles must have shape (M, {alphas.size}), got {profiles.shape}")
    if np.any(np.diff(alphas) <= 0) or not np.any(alphas == 0):
        raise ValueError("alphas must be increasing and contain 0")
    centre = profiles[:, np.flatnonzero(alphas == 0)[0]]
    tv = np.abs(np.diff(profiles, axis=1)).sum(1)
    rise = np.abs(profiles[:, 0] - centre) + np.abs(profiles[:, -1] - centre)
    if np.any(rise == 0):
        raise ValueError("a profile has equal values at its ends and centre; its variation "
                         "cannot be normalized")
    normalized = tv / rise
    mean, std = float(normalized.mean()), float(normalized.std())
    return Roughness(normalized, mean, std, std / mean)


# --- claim statistics -----------------------------------------------------------------------

@dataclass(frozen=True)
class EigenvectorPlane:
    """A surface plane along the top-2 Hessian eigenvectors (Li et al. 2018's second kind of
    directions): directions ``(2, D)`` (unit eigenvectors times ``unit``) and grids ``xs``, ``ys``
    in units of ``unit``, each spanning ± ``extent`` quadratic widths √(2δ/λ_i)."""

    directions: torch.Tensor
    xs: np.ndarray
    ys: np.ndarray


def eigenvector_plane(eigenvalues, eigenvectors: torch.Tensor, unit: float, delta: float,
                      extent: float, xnum: int, ynum: int) -> EigenvectorPlane:
    """Plane along the top-2 eigenvectors ``(≥ 2, D)`` (unit rows) of eigenvalues λ_1, λ_2 > 0.
    The directions are the eigenvectors scaled to length ``unit`` (the norm of the solution's
    filter-normalized random direction, so widths compare with the random surfaces); axis i spans
    ± ``extent`` · √(2 ``delta``/λ_i) / ``unit``, the distance at which the quadratic model rises
    by ``delta``, so the grid resolves the basin however sharp it is."""
    eigenvalues = np.asarray(eigenvalues, dtype=np.float64)[:2]
    if eigenvalues.size < 2 or np.any(eigenvalues <= 0):
        raise ValueError(f"need two positive top eigenvalues, got {eigenvalues.tolist()}")
    half = extent * np.sqrt(2 * delta / eigenvalues) / unit
    return EigenvectorPlane(eigenvectors[:2] * unit, np.linspace(-half[0], half[0], xnum),
                            np.linspace(-half[1], half[1], ynum))
