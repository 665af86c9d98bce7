"""Low-loss structures: curves and complexes as parameterizations, their training through the one
trainer, evaluation on them (BN recomputed per point), barrier and mc on hand-made profiles, and
ensemble statistics."""

import math

import numpy as np
import pytest
import torch

from lossatlas.evaluate import evaluate_points, predict_points
from lossatlas.landscape import line_points
from lossatlas.models import build_model
from lossatlas.parameterizations import (BezierCurve, PolygonalChain, SimplicialComplex,
                                         build_structure, simplex_volume)
from lossatlas.params import get_flat_params, set_flat_params_
from lossatlas.stats import (ensemble_accuracy, linear_barrier, mode_connectivity,
                             pairwise_disagreement, radius_within)
from lossatlas.structures import (complex_weights, hull_weights, plane_grid_through,
                                  points_from_weights, segment_weights, simplex_lattice)
from lossatlas.train import TrainSettings, _garipov_factor, init_model, train_run
from test_train import synthetic_data


def make_model(seed, norm="none"):
    return init_model(lambda: build_model("mlp", (1, 40), 4, width=16, depth=1, norm=norm), seed)


def endpoints(norm="none"):
    return torch.stack([get_flat_params(make_model(0, norm)), get_flat_params(make_model(1, norm))])


@pytest.mark.parametrize("curve", [BezierCurve, PolygonalChain])
def test_curve_with_bend_at_midpoint_is_the_straight_line(curve):
    ends = endpoints().double()
    ts = torch.linspace(0, 1, 11, dtype=torch.float64)
    path = curve(ends).points(curve(ends).initial_tensors(), ts)
    line = line_points(ends[0], ends[1] - ends[0], ts)
    torch.testing.assert_close(path, line, rtol=0, atol=1e-12)


def test_curve_coefficients_and_reference_point():
    t = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0])
    torch.testing.assert_close(BezierCurve.coefficients(t), torch.tensor(
        [[1, 0, 0], [0.5625, 0.375, 0.0625], [0.25, 0.5, 0.25], [0.0625, 0.375, 0.5625], [0, 0, 1.0]]))
    torch.testing.assert_close(PolygonalChain.coefficients(t), torch.tensor(
        [[1, 0, 0], [0.5, 0.5, 0], [0, 1, 0], [0, 0.5, 0.5], [0, 0, 1.0]]))
    ends = endpoints()
    chain = PolygonalChain(ends)
    bend = {"bend": ends.mean(0) + 1.0}
    torch.testing.assert_close(chain.theta(bend), bend["bend"])
    assert chain.sample(torch.Generator().manual_seed(0)).shape == (1,)


def test_complex_samples_one_simplex_with_dirichlet_weights():
    modes = torch.randn(4, 6)
    structure = SimplicialComplex(modes, connectors=3, samples=7)
    weights = structure.sample(torch.Generator().manual_seed(1))
    assert weights.shape == (7, 7)
    torch.testing.assert_close(weights.sum(1), torch.ones(7))
    on = (weights > 0).any(0)
    assert on[:4].sum() == 1 and on[4:].all()
    tensors = structure.initial_tensors()
    torch.testing.assert_close(tensors["connectors"], modes.mean(0).repeat(3, 1))
    assert structure.theta(tensors, weights).shape == (7, 6)
    torch.testing.assert_close(structure.theta(tensors), modes.mean(0))


def test_simplex_volume():
    triangle = torch.tensor([[0.0, 0, 0], [2, 0, 0], [0, 3, 0]])
    assert simplex_volume(triangle).item() == pytest.approx(3.0)
    tetra = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    assert simplex_volume(tetra).item() == pytest.approx(1 / 6)
    edge = torch.tensor([[1.0, 1.0], [4.0, 5.0]])
    assert simplex_volume(edge).item() == pytest.approx(5.0)


def test_complex_connector_reaches_the_known_minimum_of_a_convex_loss():
    """One connector c, loss ‖θ − θ*‖²: with u ~ U(0, 1) on the edge (m_i, c), E‖(1 − u)m_i + u c
    − θ*‖² is minimal at c = (3θ* − m̄)/2 (m̄ the mean of the modes)."""
    torch.manual_seed(0)
    modes, target = torch.randn(3, 5, dtype=torch.float64), torch.randn(5, dtype=torch.float64)
    structure = SimplicialComplex(modes, connectors=1, samples=128)
    tensors = {k: v.requires_grad_() for k, v in structure.initial_tensors().items()}
    optimizer = torch.optim.SGD(tensors.values(), lr=0.2)
    generator = torch.Generator().manual_seed(0)
    steps = 3000
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = 0.1 * _garipov_factor(step / steps)
        optimizer.zero_grad()
        thetas = structure.theta(tensors, structure.sample(generator))
        (thetas - target).pow(2).sum(1).mean().backward()
        optimizer.step()
    expected = (3 * target - modes.mean(0)) / 2
    torch.testing.assert_close(tensors["connectors"][0].detach(), expected, atol=0.02, rtol=0)


def test_garipov_schedule():
    assert [_garipov_factor(f) for f in (0.0, 0.5, 0.7, 0.9, 1.0)] == pytest.approx(
        [1.0, 1.0, 0.505, 0.01, 0.01])


def test_trainer_trains_a_curve_and_a_complex():
    data = synthetic_data()
    settings = TrainSettings(epochs=2, batch_size=32, schedule="garipov")
    ends = endpoints()
    curve = build_structure({"kind": "bezier", "l2": 1e-4}, ends, ["a", "b"])
    result = train_run(make_model(0), data, settings, seed=0, parameterization=curve)
    assert result.status == "ok" and set(result.trainable["final"]) == {"bend"}
    assert not torch.equal(result.trainable["final"]["bend"], result.trainable["init"]["bend"])
    assert result.parameterization["endpoints"] == ["a", "b"]
    modes = torch.stack([ends[0], ends[1], get_flat_params(make_model(2))])
    complex_ = build_structure({"kind": "complex", "connectors": 2, "samples": 3,
                                "volume_weight": 1e-3}, modes, ["a", "b", "c"])
    result = train_run(make_model(0), data, settings, seed=0, parameterization=complex_)
    assert result.status == "ok" and result.trainable["final"]["connectors"].shape == (2, len(ends[0]))
    torch.testing.assert_close(torch.tensor(result.history[-1]["param_norm"]),
                               result.trainable["final"]["connectors"].mean(0).norm())


def test_build_structure_errors():
    ends = endpoints()
    with pytest.raises(ValueError, match="unknown structure 'spline'"):
        build_structure({"kind": "spline"}, ends, ["a", "b"])
    with pytest.raises(ValueError, match="connects 2 solutions"):
        build_structure({"kind": "bezier"}, torch.cat([ends, ends[:1]]), ["a", "b", "c"])
    with pytest.raises(ValueError, match="connectors >= 1"):
        build_structure({"kind": "complex", "connectors": 0}, ends, ["a", "b"])
    with pytest.raises(ValueError, match="unknown option"):
        build_structure({"kind": "polychain", "bends": 2}, ends, ["a", "b"])


def test_barrier_and_mode_connectivity_on_hand_made_profiles():
    ts = np.linspace(0, 1, 5)
    assert linear_barrier(ts, [1.0, 2.0, 3.5, 2.0, 2.0]) == pytest.approx(3.5 - 1.5)
    assert linear_barrier(ts, [1.0, 0.5, 0.5, 0.5, 2.0]) == 0.0
    assert mode_connectivity([0.1, 0.2, 0.6, 0.2, 0.1]) == pytest.approx(0.1 - 0.6)
    assert mode_connectivity([0.3, 0.25, 0.1, 0.25, 0.3]) == pytest.approx(0.3 - 0.1)
    assert mode_connectivity([0.1, 0.2, 0.2, 0.2, 0.3]) == pytest.approx(0.0)
    with pytest.raises(ValueError):
        linear_barrier([0.0, 0.5], [1.0, 2.0])


def test_lattices_and_weights():
    lattice = simplex_lattice(3, 4)
    assert lattice.shape == (math.comb(6, 2), 3)
    np.testing.assert_allclose(lattice.sum(1), 1)
    structure = SimplicialComplex(torch.randn(3, 4), connectors=2)
    weights = complex_weights(structure, 2)
    assert weights.shape == (3 * 6 - 2 * 3, 5)
    hull = hull_weights(3, 5, 2)
    assert hull.shape == (6, 5) and (hull[:, 3:] == 0).all()
    edges = segment_weights(5, [(0, 3), (1, 4)], 3)
    np.testing.assert_allclose(edges[1], [0.5, 0, 0, 0.5, 0])
    vertices = torch.randn(5, 4, dtype=torch.float64)
    torch.testing.assert_close(points_from_weights(edges[4:5], vertices), vertices[1:2] * 0.5
                               + vertices[4:5] * 0.5)


def test_plane_grid_through_three_points_keeps_distances():
    p = torch.randn(3, 30, dtype=torch.float64)
    plane = plane_grid_through(p[0], p[1], p[2], grid=5, margin=0.1)
    assert plane.points.shape == (25, 30)
    corners = plane.corners
    assert np.linalg.norm(corners[1] - corners[0]) == pytest.approx((p[1] - p[0]).norm().item())
    assert np.linalg.norm(corners[2] - corners[1]) == pytest.approx((p[2] - p[1]).norm().item())
    np.testing.assert_allclose(plane.coordinates(p), corners, atol=1e-12)


def test_curve_evaluation_recomputes_batch_norm_statistics():
    """On a BN net, the recompute policy at a curve point equals a direct loop (reset the running
    statistics, pass the training inputs in train mode, evaluate), while the endpoint's own
    statistics give a different, wrong answer away from the endpoint."""
    data = synthetic_data()
    trained = [train_run(make_model(seed, "batch"), data, TrainSettings(epochs=3, batch_size=32),
                         seed=seed) for seed in (0, 1)]
    model = make_model(0, "batch")
    model.load_state_dict(trained[0].final_state)
    ends = torch.stack([get_flat_params(model)])
    other = make_model(1, "batch")
    other.load_state_dict(trained[1].final_state)
    ends = torch.cat([ends, get_flat_params(other)[None]])
    curve = BezierCurve(ends)
    tensors = {"bend": ends.mean(0) + 0.05 * torch.randn(ends.shape[1],
                                                        generator=torch.Generator().manual_seed(0))}
    point = curve.points(tensors, [0.4])
    recomputed = evaluate_points(model, point, data.x_test, data.y_test, bn_policy="recompute",
                                 bn_data=data.x_train)
    direct = make_model(0, "batch")
    set_flat_params_(direct, point[0])
    for module in direct.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            module.reset_running_stats()
            module.momentum = None
    direct.train()
    with torch.no_grad():
        direct(data.x_train)
        direct.eval()
        loss = torch.nn.functional.cross_entropy(direct(data.x_test), data.y_test).item()
    assert recomputed.loss[0] == pytest.approx(loss, rel=1e-5)
    kept = evaluate_points(model, point, data.x_test, data.y_test, bn_policy="keep")
    assert abs(kept.loss[0] - loss) > 1e-3


def test_predict_points_equals_a_loop():
    data = synthetic_data()
    model = make_model(0)
    thetas = get_flat_params(model) + 0.1 * torch.randn(3, get_flat_params(model).numel(),
                                                        generator=torch.Generator().manual_seed(2))
    probabilities, policy = predict_points(model, thetas, data.x_test, batch_size=10, chunk_points=2)
    assert probabilities.shape == (3, 64, 4) and policy == "none"
    for k, theta in enumerate(thetas):
        copy = make_model(0)
        set_flat_params_(copy, theta)
        with torch.no_grad():
            torch.testing.assert_close(probabilities[k], copy.eval()(data.x_test).softmax(-1))


def test_ensemble_statistics_on_hand_made_predictions():
    y = torch.tensor([0, 1, 2, 0])
    def member(labels, confidence):
        rest = (1 - confidence) / 2
        return torch.full((4, 3), rest).scatter(1, torch.tensor(labels)[:, None], confidence)

    members = torch.stack([member([0, 1, 2, 1], 0.6), member([0, 2, 2, 0], 0.9),
                           member([0, 1, 1, 0], 0.6)])
    np.testing.assert_allclose(ensemble_accuracy(members, y), [0.75, 0.75, 0.75])
    assert pairwise_disagreement(members) == pytest.approx(np.mean([2 / 4, 2 / 4, 2 / 4]))
    assert radius_within([0, 1, 2, 3], [0.1, 0.15, 0.3, 0.12], 0.2) == 1
    assert radius_within([0, 1, 2], [0.1, 0.1, 0.1], 0.2) == 2
