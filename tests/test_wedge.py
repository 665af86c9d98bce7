"""Wedge-model measurements: crossing distances, barriers and widths on hand-made profiles, the
plane basis against a direct Gram–Schmidt, and the batched points against a direct loop."""

import copy
import json
import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lossatlas.models import build_model
from lossatlas.parameterizations import RandomProjection
from lossatlas.params import get_flat_params, set_flat_params_
from lossatlas.plots.wedge import (BARRIER_CLAIM, LONG_CLAIM, TUNNEL_CLAIM, long_short_table,
                                   plot_long_short_directions, plot_wedge_cuts, wedge_cuts_table)
from lossatlas.stats import (
    Crossing,
    Width,
    barrier_height,
    crossing_distance,
    low_loss_width,
    width_radius_correlation,
)
from lossatlas.wedge import (
    direction_points,
    distance_grid,
    in_plane_normal,
    long_short_profiles,
    plane_basis,
    plane_coordinates,
    plane_cut,
    plane_grid,
    random_unit_directions,
    ray_offsets,
    ray_points,
    unit_directions_toward,
)


@pytest.fixture(scope="module")
def tiny():
    """A float64 MLP (~100 parameters) with 40 random samples of 3 classes."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    model = build_model("mlp", (6,), 3, width=8, depth=1, norm="none").double()
    x = torch.randn(40, 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (40,), generator=g)
    return model, x, y


def direct_loss(model, theta, x, y):
    net = copy.deepcopy(model)
    set_flat_params_(net, theta)
    with torch.no_grad():
        return F.cross_entropy(net(x), y).item()


# --- long and short directions -----------------------------------------------------------------

def test_random_unit_directions_are_seeded_unit_gaussian_columns():
    directions = random_unit_directions(50, 4, seed=3)
    assert directions.shape == (4, 50) and directions.dtype == torch.float32
    torch.testing.assert_close(directions.norm(dim=1), torch.ones(4))
    torch.testing.assert_close(directions, RandomProjection(50, 4, 3).matrix().T)
    assert torch.equal(directions, random_unit_directions(50, 4, seed=3))
    assert not torch.allclose(directions, random_unit_directions(50, 4, seed=4))


def test_distance_grid_is_quadratic_from_zero_to_max():
    np.testing.assert_array_equal(distance_grid(8.0, 5), [0.0, 0.5, 2.0, 4.5, 8.0])
    with pytest.raises(ValueError):
        distance_grid(1.0, 1)
    with pytest.raises(ValueError):
        distance_grid(0.0, 5)


def test_direction_points_match_a_direct_construction():
    theta, directions, t = torch.randn(5), torch.randn(3, 5), [0.0, 0.5, 2.0, 3.0]
    points = direction_points(theta, directions, t)
    assert points.shape == (12, 5)
    for m in range(3):
        for i, distance in enumerate(t):
            torch.testing.assert_close(points[m * 4 + i], theta + distance * directions[m])


def test_unit_directions_toward_targets():
    theta, targets = torch.zeros(2), torch.tensor([[3.0, 4.0], [0.0, -2.0]])
    directions, norms = unit_directions_toward(theta, targets)
    torch.testing.assert_close(directions, torch.tensor([[0.6, 0.8], [0.0, -1.0]]))
    torch.testing.assert_close(norms, torch.tensor([5.0, 2.0]))
    with pytest.raises(ValueError, match="coincides"):
        unit_directions_toward(theta, torch.zeros(1, 2))


@pytest.mark.parametrize("losses, expected", [
    ([0.1, 0.15, 0.2, 0.25, 0.3], Crossing(2.0, 1.0, False)),   # first point above 0.19
    ([0.1, 0.5, 0.1, 0.9, 0.9], Crossing(1.0, 0.0, False)),     # the first one counts, not a later
    ([0.1, 0.19, 0.19, 0.0, 0.1], Crossing(4.0, 4.0, True)),    # never above: censored at t_max
    ([0.1, 0.1, math.nan, 0.1, 0.1], Crossing(2.0, 1.0, False)),  # non-finite counts as above
    ([0.1, 0.1, 0.1, math.inf, 0.1], Crossing(3.0, 2.0, False)),
])
def test_crossing_distance_on_hand_made_profiles(losses, expected):
    assert crossing_distance([0.0, 1.0, 2.0, 3.0, 4.0], losses, 0.19) == expected


def test_crossing_distance_equal_to_threshold_is_not_above_and_bad_input_is_refused():
    assert crossing_distance([0.0, 1.0, 3.0], [0.5, 0.5, 0.6], 0.5) == Crossing(3.0, 1.0, False)
    with pytest.raises(ValueError, match="already exceeds"):
        crossing_distance([0.0, 1.0], [0.7, 0.1], 0.5)
    with pytest.raises(ValueError, match="start at 0"):
        crossing_distance([0.5, 1.0], [0.1, 0.1], 0.5)
    with pytest.raises(ValueError, match="start at 0"):
        crossing_distance([0.0, 2.0, 1.0], [0.1, 0.1, 0.1], 0.5)


def test_barrier_height_on_hand_made_profiles():
    assert barrier_height([0.1, 0.7, 1.2, 0.4, 0.2]) == pytest.approx(1.0)
    assert barrier_height([0.1, 0.15, 0.3]) == pytest.approx(-0.15)  # no interior rise
    assert barrier_height([0.5, 0.1, 0.2]) == pytest.approx(-0.4)
    with pytest.raises(ValueError):
        barrier_height([0.1, 0.2])


# --- wedge cuts --------------------------------------------------------------------------------

OFFSETS = [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0]


@pytest.mark.parametrize("losses, expected", [
    ([0.1, 0.9, 0.1, 0.1, 0.1, 0.15, 0.9], Width(3.0, -1.0, 2.0, False)),  # not the island at -3
    ([0.1, 0.1, 0.1, 0.1, 0.3, 0.9, 0.9], Width(3.0, -3.0, 0.0, True)),   # reaches the left end
    ([0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1], Width(6.0, -3.0, 3.0, True)),
    ([0.1, 0.1, 0.1, 0.9, 0.1, 0.1, 0.1], Width(0.0, 0.0, 0.0, False)),   # ray point above
    ([0.9, 0.9, 0.9, 0.2, 0.9, 0.9, 0.9], Width(0.0, 0.0, 0.0, False)),   # one point: zero length
    ([0.9, math.nan, 0.1, 0.2, 0.1, math.inf, 0.1], Width(2.0, -1.0, 1.0, False)),
])
def test_low_loss_width_on_hand_made_profiles(losses, expected):
    assert low_loss_width(OFFSETS, losses, 0.2) == expected


def test_low_loss_width_needs_increasing_offsets_with_zero():
    with pytest.raises(ValueError, match="contain 0"):
        low_loss_width([-1.5, -0.5, 0.5], [0.1, 0.1, 0.1], 0.2)
    with pytest.raises(ValueError, match="increase"):
        low_loss_width([1.0, 0.0, -1.0], [0.1, 0.1, 0.1], 0.2)


def test_ray_offsets_are_symmetric_with_zero_and_odd():
    np.testing.assert_allclose(ray_offsets(4.0, 5, 0.5), [-2.0, -1.0, 0.0, 1.0, 2.0])
    assert ray_offsets(3.7, 7, 0.3)[3] == 0.0  # exactly, whatever linspace rounds
    with pytest.raises(ValueError, match="odd"):
        ray_offsets(4.0, 4, 0.5)


def test_width_radius_correlation_is_spearman():
    assert width_radius_correlation([1, 2, 3, 4], [0.0, 0.5, 0.7, 3.0]) == pytest.approx(1.0)
    assert width_radius_correlation([1, 2, 3, 4], [3.0, 2.0, 2.0, 0.0]) == pytest.approx(
        -0.9486832980505138)  # tie: average ranks
    assert math.isnan(width_radius_correlation([1, 2, 3], [0.0, 0.0, 0.0]))


def test_plane_basis_equals_direct_gram_schmidt():
    g = torch.Generator().manual_seed(0)
    p1, p2 = torch.randn(9, generator=g, dtype=torch.float64), torch.randn(9, generator=g,
                                                                             dtype=torch.float64)
    basis = plane_basis(p1, p2)
    a, b = p1.numpy(), p2.numpy()
    e1 = a / np.linalg.norm(a)
    e2 = b - (b @ e1) * e1
    e2 /= np.linalg.norm(e2)
    np.testing.assert_allclose(basis.numpy(), np.stack([e1, e2]), rtol=0, atol=1e-14)
    np.testing.assert_allclose(basis.numpy() @ basis.numpy().T, np.eye(2), atol=1e-14)
    coordinates = plane_coordinates(torch.stack([p1, p2]), basis)
    np.testing.assert_allclose(coordinates[0], [np.linalg.norm(a), 0.0], atol=1e-13)
    np.testing.assert_allclose(coordinates[1] @ basis.numpy(), b, atol=1e-13)  # in the plane
    assert plane_basis(p1.float(), p2.float()).dtype == torch.float32
    with pytest.raises(ValueError, match="collinear"):
        plane_basis(p1, -2.5 * p1)


def test_in_plane_normal_is_a_unit_vector_of_the_plane_orthogonal_to_the_ray():
    g = torch.Generator().manual_seed(2)
    p1, p2 = torch.randn(7, generator=g, dtype=torch.float64), torch.randn(7, generator=g,
                                                                             dtype=torch.float64)
    basis = plane_basis(p1, p2)
    for theta in (p1, p2, 0.3 * p1 - 2.0 * p2):
        normal = in_plane_normal(theta, basis)
        assert normal.norm().item() == pytest.approx(1.0)
        assert (normal @ theta).item() == pytest.approx(0.0, abs=1e-12)
        torch.testing.assert_close((normal @ basis.T) @ basis, normal)
    torch.testing.assert_close(in_plane_normal(p1, basis), basis[1])


def test_plane_grid_covers_the_points_with_a_margin():
    xs, ys = plane_grid([[0.0, 0.0], [4.0, 0.0], [1.0, 2.0]], grid=5, margin=0.25)
    np.testing.assert_allclose(xs, np.linspace(-1.0, 5.0, 5))
    np.testing.assert_allclose(ys, np.linspace(-0.5, 2.5, 5))


def test_ray_points_match_a_direct_construction():
    theta, normal = torch.randn(4), torch.randn(4)
    points = ray_points(theta, normal, [0.5, 2.0], [-1.0, 0.0, 1.0])
    assert points.shape == (6, 4)
    for r, s in enumerate([0.5, 2.0]):
        for i, w in enumerate([-1.0, 0.0, 1.0]):
            torch.testing.assert_close(points[r * 3 + i], s * theta + w * normal)


# --- batched points against a direct loop ------------------------------------------------------

def test_long_short_profiles_equal_a_direct_loop(tiny):
    model, x, y = tiny
    theta = get_flat_params(model)
    g = torch.Generator().manual_seed(5)
    random = random_unit_directions(theta.numel(), 2, seed=1).double()
    targets = theta + torch.randn(2, theta.numel(), generator=g, dtype=torch.float64)
    hessian = torch.randn(1, theta.numel(), generator=g, dtype=torch.float64)
    hessian /= hessian.norm()
    distances, alphas = distance_grid(3.0, 4), np.linspace(0.0, 1.0, 5)
    profiles = long_short_profiles(model, theta, random, targets, hessian, distances, alphas, x, y,
                                   chunk_points=3)
    toward = [(t - theta) / (t - theta).norm() for t in targets]
    directions = [*random, *toward, *hessian]
    assert profiles.kinds == ["random", "random", "toward solution", "toward solution", "hessian"]
    assert profiles.losses.shape == (5, 4) and profiles.segment_losses.shape == (2, 5)
    for m, u in enumerate(directions):
        for i, t in enumerate(distances):
            assert profiles.losses[m, i] == pytest.approx(direct_loss(model, theta + t * u, x, y),
                                                          rel=1e-6)
    for j, target in enumerate(targets):
        assert profiles.target_distances[j] == pytest.approx((target - theta).norm().item())
        for i, a in enumerate(alphas):
            expected = direct_loss(model, theta + a * (target - theta), x, y)
            assert profiles.segment_losses[j, i] == pytest.approx(expected, rel=1e-6)


def test_plane_cut_equals_a_direct_loop(tiny):
    model, x, y = tiny
    theta = get_flat_params(model)
    g = torch.Generator().manual_seed(6)
    other = theta + 0.5 * torch.randn(theta.numel(), generator=g, dtype=torch.float64)
    scales = [0.5, 1.0, 2.0]
    cut = plane_cut(model, theta, other, torch.stack([theta, other]), x, y, grid=4, margin=0.1,
                    scales=scales, offsets=5, offset_range=0.25, chunk_points=7)
    basis = plane_basis(theta, other)
    assert cut.train_loss.shape == (4, 4) and cut.ray_losses.shape == (2, 3, 5)
    np.testing.assert_allclose(cut.point_coordinates[0], [0.0, 0.0])
    np.testing.assert_allclose(cut.point_coordinates[1], [theta.norm().item(), 0.0], atol=1e-12)
    for ix, a in enumerate(cut.xcoordinates):
        for iy, b in enumerate(cut.ycoordinates):
            expected = direct_loss(model, a * basis[0] + b * basis[1], x, y)
            assert cut.train_loss[iy, ix] == pytest.approx(expected, rel=1e-6)
    for r, ray in enumerate([theta, other]):
        assert cut.ray_reference_loss[r] == pytest.approx(direct_loss(model, ray, x, y), rel=1e-6)
        np.testing.assert_allclose(cut.ray_offsets[r], ray_offsets(ray.norm().item(), 5, 0.25))
        normal = in_plane_normal(ray, basis)
        for k, s in enumerate(scales):
            for i, w in enumerate(cut.ray_offsets[r]):
                expected = direct_loss(model, s * ray + w * normal, x, y)
                assert cut.ray_losses[r, k, i] == pytest.approx(expected, rel=1e-6)


# --- tables, claim rows and figures ------------------------------------------------------------

def long_short_measurement(random_losses, barrier_peak=1.0, skipped=None):
    """A hand-made long/short measurement: 2 random, 1 toward, 2 Hessian profiles on t = 0…4."""
    hessian = [[0.1, 0.3, 0.5, 0.7, 0.9], [0.1, 0.15, 0.3, 0.7, 0.9]]
    toward = [0.1, 0.15, 0.5, 0.2, 0.2]
    arrays = {"distances": np.arange(5.0), "losses": np.array([*random_losses, toward, *hessian]),
              "alphas": np.linspace(0, 1, 3),
              "segment_losses": np.array([[0.1, barrier_peak, 0.12]]),
              "target_distances": np.array([3.0]), "eigenvalues": np.array([5.0, 2.0])}
    attrs = {"status": "ok", "origin": "w-s0", "group": "w", "delta": 0.1, "long_ratio": 3.0,
             "origin_loss": 0.1, "kinds": json.dumps(["random"] * 2 + ["toward solution"]
                                                     + ["hessian"] * 2),
             "targets": json.dumps(["w-s1"]), "skipped": json.dumps(skipped or {})}
    return arrays, attrs


def claims_of(table):
    return table[table["run"] == "claim"].set_index("claim")


def test_long_short_table_crossings_and_claims():
    arrays, attrs = long_short_measurement([[0.1, 0.1, 0.15, 0.18, 0.3], [0.1, 0.1, 0.1, 0.3, 0.3]],
                                           skipped={"w-s2": "skipped: w-s2 diverged"})
    table = long_short_table(arrays, attrs)
    rows = table[(table["run"] == "w-s0") & (table["status"] == "ok")]
    np.testing.assert_array_equal(rows["crossing_distance"], [4.0, 3.0, 2.0, 1.0, 2.0])
    toward = rows[rows["kind"] == "toward solution"].iloc[0]
    assert toward["target"] == "w-s1" and toward["barrier"] == pytest.approx(0.88)
    assert toward["target_loss"] == pytest.approx(0.12)
    skip = table[table["status"] == "skipped: w-s2 diverged"]
    assert skip["target"].tolist() == ["w-s2"]
    claims = claims_of(table)
    long = claims.loc[LONG_CLAIM]  # true ratio in (2.5 / 1.5, 3.5 / 0.5] straddles 3
    assert long["value"] == pytest.approx(3.5 / 1.5) and long["verdict"] == "inconclusive"
    assert "(1.67, 7]" in long["reason"]
    for long_ratio, verdict in ((7.5, "does not hold"), (1.6, "holds")):
        attrs["long_ratio"] = long_ratio
        assert claims_of(long_short_table(arrays, attrs)).loc[LONG_CLAIM]["verdict"] == verdict
    barrier = claims.loc[BARRIER_CLAIM]
    assert barrier["value"] == pytest.approx(0.88) and barrier["verdict"] == "holds"
    assert "w-s2" in barrier["reason"]


def test_long_short_ratio_with_censored_random_crossings_is_a_lower_bound():
    never = [0.1, 0.1, 0.1, 0.1, 0.1]
    arrays, attrs = long_short_measurement([never, never], barrier_peak=0.15)
    claims = claims_of(long_short_table(arrays, attrs))
    long = claims.loc[LONG_CLAIM]
    assert long["value"] == pytest.approx(4.0 / 1.5) and long["verdict"] == "inconclusive"
    assert "lower bound" in long["reason"] and "(2.67, inf]" in long["reason"]
    assert claims.loc[BARRIER_CLAIM]["verdict"] == "does not hold"  # 0.03 < δ
    attrs["long_ratio"] = 2.5
    assert claims_of(long_short_table(arrays, attrs)).loc[LONG_CLAIM]["verdict"] == "holds"


def test_long_short_table_and_figure_of_a_skipped_origin():
    attrs = {"status": "skipped: w-s0 diverged", "origin": "w-s0", "group": "w", "delta": 0.1,
             "long_ratio": 3.0, "skipped": json.dumps({"w-s0": "skipped: w-s0 diverged"})}
    table = long_short_table({}, attrs)
    assert table.iloc[0]["status"] == "skipped: w-s0 diverged"
    assert set(claims_of(table)["verdict"]) == {"inconclusive"}
    plt.close(plot_long_short_directions({}, attrs, table))


def test_long_short_figure_draws():
    arrays, attrs = long_short_measurement([[0.1, 0.1, 0.15, 0.18, 0.3], [0.1] * 5])
    plt.close(plot_long_short_directions(arrays, attrs, long_short_table(arrays, attrs)))


def plane_measurement(ray_losses, status="ok"):
    """A hand-made plane with one ray: scales 0.5, 1, 2 of a ray of norm 2; offsets −1 … 1."""
    attrs = {"status": status, "delta": 0.1, "min_correlation": 0.5, "ray_labels": '["w-s0"]',
             "point_labels": '["origin", "init of w-s0", "w-s0"]'}
    if status != "ok":
        return {}, attrs
    grid = np.linspace(0.05, 2.0, 9).reshape(3, 3)
    axis = np.array([-1.0, 0.5, 2.0])
    arrays = {"xcoordinates": axis, "ycoordinates": axis,
              "train_loss": grid, "train_acc": grid, "ray_scales": np.array([0.5, 1.0, 2.0]),
              "point_coordinates": np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 0.0]]),
              "ray_offsets": np.array([[-1.0, -0.5, 0.0, 0.5, 1.0]]),
              "ray_losses": np.array([ray_losses]), "ray_reference_loss": np.array([0.1]),
              "ray_norms": np.array([2.0])}
    return arrays, attrs


def test_wedge_cuts_table_widths_correlation_and_skipped_plane():
    widening = [[0.9, 0.9, 0.15, 0.9, 0.9], [0.9, 0.1, 0.1, 0.1, 0.9], [0.9, 0.1, 0.1, 0.1, 0.1]]
    planes = {"init": plane_measurement(widening),
              "solutions": plane_measurement(None, "skipped: w-s1 diverged")}
    table = wedge_cuts_table(planes)
    rows = table[table["status"] == "ok"]
    np.testing.assert_array_equal(rows["width"], [0.0, 1.0, 1.5])
    np.testing.assert_array_equal(rows["radius"], [1.0, 2.0, 4.0])
    assert rows["censored"].tolist() == [False, False, True]
    assert table[table["plane"] == "solutions"]["status"].tolist() == ["skipped: w-s1 diverged"]
    claim = claims_of(table).loc[TUNNEL_CLAIM]
    assert claim["value"] == pytest.approx(1.0) and claim["verdict"] == "holds"
    assert "plane solutions skipped: w-s1 diverged" in claim["reason"]
    plt.close(plot_wedge_cuts(planes, table))


def test_wedge_cuts_claim_fails_or_is_inconclusive_with_censored_widths():
    narrowing = [[0.9, 0.1, 0.1, 0.1, 0.9], [0.9, 0.9, 0.1, 0.1, 0.9], [0.9, 0.9, 0.1, 0.9, 0.9]]
    claim = claims_of(wedge_cuts_table({"init": plane_measurement(narrowing)})).loc[TUNNEL_CLAIM]
    assert claim["value"] == pytest.approx(-1.0) and claim["verdict"] == "does not hold"
    censored = [[0.1, 0.1, 0.1, 0.1, 0.1], [0.9, 0.9, 0.1, 0.1, 0.9], [0.9, 0.9, 0.1, 0.9, 0.9]]
    claim = claims_of(wedge_cuts_table({"init": plane_measurement(censored)})).loc[TUNNEL_CLAIM]
    assert claim["verdict"] == "inconclusive" and "lower bounds" in claim["reason"]
    flat = [[0.9, 0.1, 0.1, 0.1, 0.9]] * 3
    claim = claims_of(wedge_cuts_table({"init": plane_measurement(flat)})).loc[TUNNEL_CLAIM]
    assert claim["verdict"] == "inconclusive"
