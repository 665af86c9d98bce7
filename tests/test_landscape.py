"""Geometry of lines, planes and grids; trajectory PCA; MLI, SGD-walk and roughness metrics."""

import copy

import h5py
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lossatlas import io
from lossatlas.landscape import (ORIENTATION_1D, ORIENTATION_2D, UNITS, checkpoint_plane,
                                 grid_part, largest_rise, line_points, load_directions,
                                 merge_surface_parts, mli_metrics, pca_arrays, plane_points,
                                 project_onto_plane, random_directions, roughness_index,
                                 save_directions, segment_minima, segment_points, shared_directions,
                                 segment_profiles, surface_1d, surface_2d, surface_2d_part,
                                 trajectory_pca)
from lossatlas.models import build_model
from lossatlas.params import get_flat_params, param_layout, set_flat_params_


@pytest.fixture(scope="module")
def case():
    torch.manual_seed(0)
    model = build_model("cnn1d", (1, 40), 4, width=3, norm="none")
    x, y = torch.randn(30, 1, 40), torch.randint(0, 4, (30,))
    x_test, y_test = torch.randn(20, 1, 40), torch.randint(0, 4, (20,))
    return model, (x, y, x_test, y_test)


def direct_loss(model, theta, x, y):
    net = copy.deepcopy(model)
    set_flat_params_(net, theta)
    with torch.no_grad():
        return F.cross_entropy(net(x), y).item()


def direct_accuracy_percent(model, theta, x, y):
    net = copy.deepcopy(model)
    set_flat_params_(net, theta)
    with torch.no_grad():
        return 100 * (net(x).argmax(1) == y).double().mean().item()


def test_filter_normalized_directions_match_filter_norms_and_zero_biases(case):
    model, _ = case
    theta, layout = get_flat_params(model), param_layout(model)
    directions = random_directions(theta, layout, count=2, seed=7)
    assert torch.equal(directions, random_directions(theta, layout, count=2, seed=7))
    assert not torch.allclose(directions[0], directions[1])
    for name, shape, piece in layout.slices():
        d, w = directions[0][piece].view(shape), theta[piece].view(shape)
        if len(shape) == 1:
            assert torch.all(d == 0), name
        else:
            torch.testing.assert_close(d.flatten(1).norm(dim=1), w.flatten(1).norm(dim=1))


def test_line_and_plane_points_and_checkpoint_plane():
    theta, d1, d2 = torch.randn(6), torch.randn(6), torch.randn(6)
    line = line_points(theta, d1, [-1.0, 0.0, 2.0])
    torch.testing.assert_close(line, torch.stack([theta - d1, theta, theta + 2 * d1]))
    xs, ys = [-1.0, 0.5, 2.0], [0.0, 3.0]
    grid = plane_points(theta, d1, d2, xs, ys)
    assert grid.shape == (6, 6)
    for ix, a in enumerate(xs):
        for iy, b in enumerate(ys):
            torch.testing.assert_close(grid[iy * len(xs) + ix], theta + a * d1 + b * d2)
    a, b, c = torch.randn(3, 6)
    origin, e1, e2 = checkpoint_plane(a, b, c)
    corners = plane_points(origin, e1, e2, [0.0, 1.0], [0.0, 1.0])
    torch.testing.assert_close(corners[[0, 1, 2]], torch.stack([a, b, c]))


def test_surface_2d_orientation_matches_a_double_loop_on_a_non_square_grid(case):
    model, data = case
    theta, layout = get_flat_params(model), param_layout(model)
    d1, d2 = random_directions(theta, layout, 2, seed=1)
    xs, ys = np.linspace(-1, 1, 4), np.linspace(-0.5, 0.5, 3)
    surface = surface_2d(model, theta, d1, d2, xs, ys, data, chunk_points=5, batch_size=16)
    arrays = surface.arrays
    assert arrays["train_loss"].shape == (3, 4) and arrays["test_acc"].shape == (3, 4)
    np.testing.assert_array_equal(arrays["xcoordinates"], xs)
    np.testing.assert_array_equal(arrays["ycoordinates"], ys)
    for ix, a in enumerate(xs):
        for iy, b in enumerate(ys):
            point = theta + float(a) * d1 + float(b) * d2
            assert arrays["train_loss"][iy, ix] == pytest.approx(
                direct_loss(model, point, *data[:2]), rel=1e-5)
            assert arrays["test_loss"][iy, ix] == pytest.approx(
                direct_loss(model, point, *data[2:]), rel=1e-5)
    assert surface.attrs == {"bn_policy": "none", "orientation": ORIENTATION_2D, **UNITS}


def test_surface_file_reads_as_loss_landscape_plots_read_it(case, tmp_path):
    """tomgoldstein/loss-landscape's plot_2D.py and h52vtp.py read Z = f[name][:] against
    X, Y = meshgrid(xcoordinates, ycoordinates) (h52vtp ravels all three), accuracies in percent:
    on an asymmetric, non-square grid every corner must be the loss and accuracy at its (x, y)."""
    model, data = case
    theta, layout = get_flat_params(model), param_layout(model)
    d1, d2 = random_directions(theta, layout, 2, seed=3)
    surface = surface_2d(model, theta, d1, d2, np.linspace(-1, 2, 5), np.linspace(-0.5, 0.25, 3),
                         data)
    io.write_h5(tmp_path / "surface.h5", surface.arrays, surface.attrs)
    with h5py.File(tmp_path / "surface.h5", "r") as f:
        grid_x, grid_y = np.meshgrid(f["xcoordinates"][:], f["ycoordinates"][:])
        loss, accuracy = np.array(f["train_loss"][:]), np.array(f["train_acc"][:])
        assert f.attrs["orientation"] == ORIENTATION_2D
        assert f.attrs["accuracy_units"] == "percent (0-100)"
    assert loss.shape == accuracy.shape == grid_x.shape == (3, 5)
    corners = {(-1.0, -0.5): (0, 0), (2.0, -0.5): (0, -1), (-1.0, 0.25): (-1, 0),
               (2.0, 0.25): (-1, -1)}
    for (x, y), index in corners.items():
        assert (grid_x[index], grid_y[index]) == (x, y)
        point = theta + x * d1 + y * d2
        assert loss[index] == pytest.approx(direct_loss(model, point, *data[:2]), rel=1e-5)
        assert accuracy[index] == pytest.approx(direct_accuracy_percent(model, point, *data[:2]))
    flat_x, flat_y, flat_loss = grid_x.ravel(), grid_y.ravel(), loss.ravel()
    assert (flat_x[4], flat_y[4]) == (2.0, -0.5) and flat_loss[4] == loss[0, -1]
    figure = plt.figure()
    plt.contour(grid_x, grid_y, loss)
    plt.close(figure)


def test_split_and_merge_equals_the_whole_grid(case):
    model, data = case
    theta, layout = get_flat_params(model), param_layout(model)
    d1, d2 = random_directions(theta, layout, 2, seed=2)
    xs, ys = np.linspace(-1, 1, 5), np.linspace(-1, 1, 2)
    whole = surface_2d(model, theta, d1, d2, xs, ys, data)
    parts = [surface_2d_part(model, theta, d1, d2, xs, ys, data, part=i, n_parts=3)
             for i in (2, 0, 1)]
    assert [(p.start, p.stop) for p in parts] == [(6, 10), (0, 3), (3, 6)]
    merged = merge_surface_parts(parts)
    for name, array in whole.arrays.items():
        np.testing.assert_allclose(merged.arrays[name], array, rtol=1e-6)
    with pytest.raises(ValueError, match="cover 6 of 10"):
        merge_surface_parts(parts[1:])
    with pytest.raises(ValueError, match="gap or overlap"):
        merge_surface_parts(parts[:2])


def test_grid_parts_tile_the_grid():
    for n_points, n_parts in [(10, 3), (441, 8), (5, 5)]:
        ranges = [grid_part(n_points, i, n_parts) for i in range(n_parts)]
        assert ranges[0][0] == 0 and ranges[-1][1] == n_points
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    with pytest.raises(ValueError, match="part 3 out of range"):
        grid_part(10, 3, 3)


def test_surface_1d_at_zero_is_the_loss_at_theta(case):
    model, data = case
    theta = get_flat_params(model)
    direction = random_directions(theta, param_layout(model), 1, seed=0)[0]
    surface = surface_1d(model, theta, direction, [-0.5, 0.0, 0.5], data)
    assert surface.arrays["train_loss"][1] == pytest.approx(direct_loss(model, theta, *data[:2]),
                                                            rel=1e-6)
    assert set(surface.arrays) == {"xcoordinates", "train_loss", "train_acc", "test_loss",
                                   "test_acc"}
    assert surface.arrays["test_acc"][1] == pytest.approx(
        direct_accuracy_percent(model, theta, *data[2:]))
    assert surface.attrs == {"orientation": ORIENTATION_1D, **UNITS, "bn_policy": "none"}


def test_shared_directions_are_the_seeded_gaussians_every_job_draws_alike(case):
    """Rows 0, 1 (surface) and the roughness rows are consecutive standard-normal draws of one
    generator seeded with the seed, unnormalized, whatever θ the job holds."""
    model, _ = case
    layout = param_layout(model)
    directions = shared_directions(layout, 3, roughness_directions=2)
    generator = torch.Generator().manual_seed(3)
    expected = torch.stack([torch.randn(layout.dim, generator=generator) for _ in range(4)])
    assert directions.dtype == torch.float32 and torch.equal(directions, expected)
    assert torch.equal(shared_directions(layout, 3, roughness_directions=2), directions)
    assert not torch.equal(shared_directions(layout, 4, roughness_directions=2), directions)


def test_directions_round_trip_through_hdf5(case, tmp_path):
    model, _ = case
    theta, layout = get_flat_params(model), param_layout(model)
    directions = random_directions(theta, layout, 2, seed=4)
    path = tmp_path / "directions.h5"
    save_directions(path, directions, layout, {"kind": "random", "seed": 4})
    loaded, attrs = load_directions(path, layout)
    assert torch.equal(loaded, directions)
    assert attrs["seed"] == 4 and attrs["kind"] == "random"
    with h5py.File(path) as f:
        assert f["directions"].shape == (2, layout.dim)
        # as loss-landscape's net_plotter.load_directions reads it: one dataset per parameter
        for row, group in enumerate(("xdirection", "ydirection")):
            tensors = [f[group][str(i)][()] for i in range(len(f[group]))]
            assert [t.shape for t in tensors] == [tuple(p.shape) for p in model.parameters()]
            flat = np.concatenate([t.ravel() for t in tensors])
            np.testing.assert_array_equal(flat, directions[row].float().numpy())
    other = param_layout(build_model("mlp", (1, 40), 4, width=3))
    with pytest.raises(ValueError, match="another architecture"):
        load_directions(path, other)


def test_pca_of_a_planar_trajectory_explains_everything_and_projection_recovers_coordinates():
    torch.manual_seed(0)
    d = 50
    final = torch.randn(d, dtype=torch.float64)
    u, v = torch.randn(d, dtype=torch.float64), torch.randn(d, dtype=torch.float64)
    t = torch.linspace(0, 1, 12, dtype=torch.float64)
    a, b = (1 - t) ** 2 * 3, torch.sin(3 * t) * (1 - t)
    trajectory = final + a[:, None] * u + b[:, None] * v
    pca = trajectory_pca(trajectory)
    assert pca.explained_variance_ratio.sum() == pytest.approx(1.0, abs=1e-12)
    torch.testing.assert_close(pca.directions @ pca.directions.T, torch.eye(2, dtype=torch.float64))
    recovered = torch.as_tensor(pca.coordinates) @ pca.directions
    torch.testing.assert_close(final + recovered, trajectory)
    coordinates = project_onto_plane(trajectory, final, u, v)
    np.testing.assert_allclose(coordinates, torch.stack([a, b], 1).numpy(), atol=1e-10)


def test_pca_files_read_as_loss_landscape_plots_the_path_on_the_surface(case, tmp_path):
    """plot_2D.py's contour-plus-trajectory plot reads the surface (``xcoordinates``, ...), the path
    (``proj_xcoord``, ``proj_ycoord``) and the PCA file (``explained_variance_ratio_``): the path's
    coordinates must place each checkpoint on the plane of the surface."""
    model, data = case
    final = get_flat_params(model).double()
    u, v = random_directions(final, param_layout(model), 2, seed=5)
    t = torch.linspace(0, 1, 6, dtype=torch.float64)
    trajectory = final + ((1 - t) ** 2)[:, None] * u + (t * (1 - t))[:, None] * v
    pca = trajectory_pca(trajectory)
    xs, ys = np.array([-1.0, 0.0, 1.0, 2.0]), np.array([-1.0, 0.0, 1.0])
    surface = surface_2d(model, final, *pca.directions, xs, ys, data)
    io.write_h5(tmp_path / "surface.h5", {**surface.arrays, **pca_arrays(pca)}, surface.attrs)
    save_directions(tmp_path / "directions.h5", pca.directions, param_layout(model), {},
                    {"explained_variance_ratio_": pca.explained_variance_ratio})
    with h5py.File(tmp_path / "surface.h5", "r") as f:
        path_x, path_y = f["proj_xcoord"][:], f["proj_ycoord"][:]
        loss = f["train_loss"][:]
    with h5py.File(tmp_path / "directions.h5", "r") as f:
        ratio = f["explained_variance_ratio_"][:]
    np.testing.assert_allclose(ratio, pca.explained_variance_ratio)
    assert ratio.sum() == pytest.approx(1.0)
    on_plane = final + torch.as_tensor(np.stack([path_x, path_y], 1)) @ pca.directions
    torch.testing.assert_close(on_plane, trajectory)
    assert (path_x[-1], path_y[-1]) == pytest.approx((0.0, 0.0), abs=1e-12)
    assert loss[1, 1] == pytest.approx(direct_loss(model, final.float(), *data[:2]), rel=1e-5)


def test_pca_of_a_straight_path_has_one_component():
    direction = torch.randn(20, dtype=torch.float64)
    trajectory = torch.linspace(2, 0, 6, dtype=torch.float64)[:, None] * direction
    ratio = trajectory_pca(trajectory).explained_variance_ratio
    assert ratio[0] == pytest.approx(1.0) and ratio[1] == pytest.approx(0.0, abs=1e-12)


def test_largest_rise_and_mli_metrics_on_hand_made_curves():
    assert largest_rise([3.0, 2.0, 2.0, 1.0]) == 0.0
    assert largest_rise([3.0, 1.0, 2.5, 0.5, 1.0]) == 1.5
    assert largest_rise([1.0, 4.0, 0.0]) == 3.0
    theta0, theta_final = torch.tensor([3.0, 4.0]), torch.tensor([3.0, 0.0])
    alphas = [-0.5, 0.0, 0.5, 1.0, 1.5]
    metrics = mli_metrics(alphas, [0.0, 2.0, 2.1, 1.0, 9.0], theta0, theta_final, tolerance=0.05)
    assert metrics.delta == pytest.approx(0.1) and not metrics.monotonic
    assert metrics.distance == 4.0 and metrics.relative_distance == pytest.approx(0.8)
    assert mli_metrics(alphas, [0.0, 2.0, 2.1, 1.0, 9.0], theta0, theta_final,
                       tolerance=0.2).monotonic


def test_sgd_walk_segments_share_endpoints_and_locate_minima():
    iterates = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 2.0]])
    points = segment_points(iterates, 5)
    assert points.shape == (9, 2)
    torch.testing.assert_close(points[[0, 4, 8]], iterates)
    torch.testing.assert_close(points[6], torch.tensor([1.0, 1.0]))
    profiles = segment_profiles(np.arange(9.0), 2, 5)
    np.testing.assert_array_equal(profiles, [[0, 1, 2, 3, 4], [4, 5, 6, 7, 8]])
    minima = segment_minima(np.array([[3.0, 1.0, 2.0], [1.0, 2.0, 3.0], [3.0, 2.0, 0.5]]))
    np.testing.assert_array_equal(minima.argmin, [1, 0, 2])
    np.testing.assert_array_equal(minima.interior, [True, False, False])
    assert minima.interior_fraction == pytest.approx(1 / 3)


def test_roughness_index_of_smooth_and_oscillating_profiles():
    alphas = np.linspace(-1, 1, 9)
    basin = alphas**2
    wiggly = alphas**2 + 0.1 * np.cos(12 * np.pi * alphas)
    smooth = roughness_index(alphas, np.stack([basin, 2 * basin, basin + 1]))
    np.testing.assert_allclose(smooth.normalized_tv, 1.0)
    assert smooth.std == 0.0 and smooth.roughness_index == 0.0
    rough = roughness_index(alphas, np.stack([basin, wiggly]))
    assert rough.normalized_tv[1] > 1.0 and rough.roughness_index > 0
    assert rough.mean == pytest.approx(rough.normalized_tv.mean())
    with pytest.raises(ValueError, match="contain 0"):
        roughness_index(alphas + 0.01, np.stack([basin]))
