"""The batched evaluator equals a plain per-point loop for every model, norm and BN policy."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lossatlas.evaluate import (DEFAULT_MEMORY_BUDGET, budget_from_free_memory, choose_strategy,
                                default_memory_budget, evaluate_points, evaluate_train_test,
                                interpolate_buffers, subset_indices)
from lossatlas.functional import FunctionalModel
from lossatlas.landscape import plane_points, random_directions
from lossatlas.models import MODELS, build_model
from lossatlas.params import get_flat_params, param_layout, set_flat_params_

SHAPES = {"mlp": (1, 40), "cnn1d": (1, 40), "cnn2d": (3, 8, 8), "resnet20": (3, 8, 8)}
CLASSES = 5


def make_case(name, norm, n=37, k=5, seed=0):
    """Tiny model with non-trivial BN running statistics, data and K points around θ."""
    torch.manual_seed(seed)
    model = build_model(name, SHAPES[name], CLASSES, width=4, norm=norm)
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(1.5 * torch.randn(16, *SHAPES[name]) + 0.3)
    model.eval()
    x = torch.randn(n, *SHAPES[name])
    y = torch.randint(0, CLASSES, (n,))
    theta = get_flat_params(model)
    points = theta + 0.05 * theta.abs().mean() * torch.randn(k, theta.numel())
    return model, x, y, points


def batch_norms(model):
    return [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]


def loop_reference(model, points, x, y, policy, bn_data=None, bn_batch_size=None, buffers=None):
    """Per point: copy θ into the module, set BN statistics as the policy says, evaluate."""
    losses, accs = [], []
    for k, theta in enumerate(points):
        net = copy.deepcopy(model)
        set_flat_params_(net, theta)
        if policy == "recompute":
            for bn in batch_norms(net):
                bn.reset_running_stats()
                bn.momentum = None
            net.train()
            with torch.no_grad():
                for start in range(0, bn_data.shape[0], bn_batch_size):
                    net(bn_data[start:start + bn_batch_size])
        if policy == "interpolate":
            with torch.no_grad():
                for name, b in net.named_buffers():
                    if name in buffers:
                        b.copy_(buffers[name][k])
        net.eval()
        with torch.no_grad():
            logits = net(x)
        losses.append(F.cross_entropy(logits, y).item())
        accs.append((logits.argmax(1) == y).double().mean().item())
    return np.array(losses), np.array(accs)


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("norm", ["none", "batch"])
@pytest.mark.parametrize("policy", ["keep", "recompute", "interpolate"])
def test_batched_equals_per_point_loop(name, norm, policy):
    model, x, y, points = make_case(name, norm)
    bn_data = torch.randn(30, *SHAPES[name]) * 2 + 1
    buffers = None
    if policy == "interpolate":
        other = copy.deepcopy(model)
        for bn in batch_norms(other):
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
        buffers = interpolate_buffers(dict(model.named_buffers()), dict(other.named_buffers()),
                                      torch.linspace(0, 1, points.shape[0]))
    result = evaluate_points(model, points, x, y, bn_policy=policy, bn_data=bn_data,
                             bn_batch_size=12, bn_buffers=buffers if norm == "batch" else None)
    loss, acc = loop_reference(model, points, x, y, policy if norm == "batch" else "keep",
                               bn_data, 12, buffers)
    np.testing.assert_allclose(result.loss, loss, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(result.accuracy, acc)
    assert result.loss.dtype == np.float64 and result.loss.shape == (points.shape[0],)
    assert result.bn_policy == (policy if norm == "batch" else "none")
    assert result.n_samples == x.shape[0]


@pytest.mark.parametrize("name,norm,policy", [("mlp", "none", "keep"), ("cnn1d", "batch", "keep"),
                                              ("cnn2d", "batch", "recompute")])
def test_chunking_over_points_and_data_does_not_change_results(name, norm, policy):
    model, x, y, points = make_case(name, norm, n=50, k=7)
    options = {"bn_policy": policy, "bn_data": x}
    whole = evaluate_points(model, points, x, y, chunk_points=7, batch_size=50, **options)
    for chunk, batch in [(1, 50), (3, 7), (2, 4), (7, 13)]:
        split = evaluate_points(model, points, x, y, chunk_points=chunk, batch_size=batch, **options)
        np.testing.assert_allclose(split.loss, whole.loss, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(split.accuracy, whole.accuracy)
    tight = evaluate_points(model, points, x, y, memory_budget_bytes=50_000, **options)
    np.testing.assert_allclose(tight.loss, whole.loss, rtol=1e-5, atol=1e-6)


def plane_case(name, norm):
    """``make_case`` with the 6 points of a filter-normalized plane θ + x d1 + y d2 instead."""
    model, x, y, _ = make_case(name, norm)
    theta = get_flat_params(model)
    d1, d2 = random_directions(theta, param_layout(model), 2, seed=1)
    return model, x, y, plane_points(theta, d1, d2, [-1.0, 0.0, 1.0], [-0.5, 1.0])


@pytest.mark.parametrize("name,norm,policy", [
    *[(name, "none", "keep") for name in sorted(MODELS)], ("mlp", "batch", "recompute"),
    ("cnn2d", "batch", "recompute"), ("cnn1d", "batch", "interpolate")])
def test_every_strategy_gives_the_per_point_loop_values(name, norm, policy):
    """vmap, loop and structured (first layer from 3 shared products) agree with the reference
    loop to float32 rounding (rtol 1e-5) on a plane, in data batches of 16 of 37 samples."""
    model, x, y, points = plane_case(name, norm)
    bn_data = torch.randn(30, *SHAPES[name]) * 2 + 1
    other = copy.deepcopy(model)
    for bn in batch_norms(other):
        bn.running_mean.uniform_(-1, 1)
    buffers = interpolate_buffers(dict(model.named_buffers()), dict(other.named_buffers()),
                                  torch.linspace(0, 1, points.shape[0]))
    loss, acc = loop_reference(model, points, x, y, policy, bn_data, 12, buffers)
    for strategy in ("vmap", "loop", "structured"):
        result = evaluate_points(model, points, x, y, bn_policy=policy, bn_data=bn_data,
                                 bn_batch_size=12, bn_buffers=buffers if norm == "batch" else None,
                                 batch_size=16, chunk_points=4, strategy=strategy)
        np.testing.assert_allclose(result.loss, loss, rtol=1e-5, atol=1e-6, err_msg=strategy)
        np.testing.assert_array_equal(result.accuracy, acc, err_msg=strategy)


def test_structured_strategy_takes_any_points_and_auto_chooses_by_rule():
    model, x, y, points = make_case("mlp", "none", k=4)
    fmodel = FunctionalModel(model)
    loop = evaluate_points(model, points, x, y, strategy="loop")
    structured = evaluate_points(model, points, x, y, strategy="structured")
    np.testing.assert_allclose(structured.loss, loop.loss, rtol=1e-5)
    _, _, _, plane = plane_case("mlp", "none")
    strategy, plan = choose_strategy("auto", fmodel, plane, x, 4000)
    assert strategy == "structured" and plan.basis.shape[0] == 2
    np.testing.assert_allclose(plan.coefficients[:, 1:] @ plan.basis + plan.origin,
                               torch.cat([plane[:, :160], plane[:, 160:164]], 1), atol=1e-6)
    assert choose_strategy("auto", fmodel, points, x, 4000)[0] == "loop"
    assert choose_strategy("auto", fmodel, points, x, 100)[0] == "vmap"
    cnn_model, cnn_x, _, cnn_plane = plane_case("cnn1d", "none")
    assert choose_strategy("auto", FunctionalModel(cnn_model), cnn_plane, cnn_x, 4000)[0] == "loop"
    with pytest.raises(ValueError, match="unknown strategy 'fast'"):
        evaluate_points(model, points, x, y, strategy="fast")


def test_memory_budget_follows_the_device():
    assert default_memory_budget("cpu") == DEFAULT_MEMORY_BUDGET == 64 * 2**20
    assert budget_from_free_memory(10 * 2**30) == 5 * 2**30
    assert budget_from_free_memory(2**20) == DEFAULT_MEMORY_BUDGET


@pytest.mark.parametrize("policy", ["keep", "recompute"])
def test_points_and_data_of_another_dtype_are_evaluated_in_the_model_dtype(policy):
    """A float64 θ and float64 data on a float32 BN model (and float32 ones on a float64 model)
    are converted once to the model's dtype: the same values as the model's own dtype."""
    model, x, y, points = make_case("cnn1d", "batch")
    expected = evaluate_points(model, points, x, y, bn_policy=policy, bn_data=x)
    as_double = evaluate_points(model, points.double(), x.double(), y, bn_policy=policy,
                                bn_data=x.double())
    np.testing.assert_array_equal(as_double.loss, expected.loss)
    double_model = copy.deepcopy(model).double()
    in_double = evaluate_points(double_model, points, x, y, bn_policy=policy, bn_data=x)
    np.testing.assert_allclose(in_double.loss, expected.loss, rtol=1e-5)


def test_loss_is_the_mean_over_samples_at_the_trained_point():
    model, x, y, _ = make_case("mlp", "none")
    theta = get_flat_params(model)
    result = evaluate_points(model, theta[None], x, y, batch_size=8)
    with torch.no_grad():
        logits = model(x)
    assert result.loss[0] == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-6)
    assert result.accuracy[0] == (logits.argmax(1) == y).sum().item() / x.shape[0]


def test_functional_model_is_accepted_and_mse_loss_follows_it():
    model, x, y, points = make_case("mlp", "none")
    fmodel = FunctionalModel(model, loss="mse")
    result = evaluate_points(fmodel, points, x, y)
    expected = []
    for theta in points:
        net = copy.deepcopy(model)
        set_flat_params_(net, theta)
        with torch.no_grad():
            target = F.one_hot(y, CLASSES).float()
            expected.append(((net(x) - target) ** 2).sum(1).mean().item())
    np.testing.assert_allclose(result.loss, expected, rtol=1e-5)


def test_train_test_subset_is_seeded_and_matches_direct_evaluation():
    model, x, y, points = make_case("cnn1d", "batch", n=40)
    x_test, y_test = x[:25] + 0.1, y[:25]
    metrics = evaluate_train_test(model, points, x, y, x_test, y_test, n_samples=20, seed=3,
                                  bn_policy="recompute")
    train_index, test_index = subset_indices(40, 20, 3), subset_indices(25, 20, 3)
    assert torch.equal(train_index, subset_indices(40, 20, 3))
    assert not torch.equal(train_index, subset_indices(40, 20, 4))
    direct = evaluate_points(model, points, x_test[test_index], y_test[test_index],
                             bn_policy="recompute", bn_data=x[train_index])
    np.testing.assert_array_equal(metrics.test.loss, direct.loss)
    assert metrics.train.n_samples == 20 and metrics.test.n_samples == 20
    assert subset_indices(25, 100, 0).tolist() == list(range(25))


def test_interpolated_buffers_are_linear_and_skip_counters():
    a = {"m": torch.zeros(3), "v": torch.ones(3), "n": torch.tensor(5)}
    b = {"m": torch.full((3,), 2.0), "v": torch.full((3,), 3.0), "n": torch.tensor(9)}
    out = interpolate_buffers(a, b, torch.tensor([0.0, 0.25, 1.0]))
    assert set(out) == {"m", "v"}
    torch.testing.assert_close(out["m"][:, 0], torch.tensor([0.0, 0.5, 2.0]))
    torch.testing.assert_close(out["v"][:, 2], torch.tensor([1.0, 1.5, 3.0]))


def test_bad_inputs_name_the_culprit():
    model, x, y, points = make_case("mlp", "batch")
    with pytest.raises(ValueError, match="bn_policy 'warm'"):
        evaluate_points(model, points, x, y, bn_policy="warm")
    with pytest.raises(ValueError, match="needs the training inputs bn_data"):
        evaluate_points(model, points, x, y, bn_policy="recompute")
    with pytest.raises(ValueError, match="needs per-point bn_buffers"):
        evaluate_points(model, points, x, y, bn_policy="interpolate")
    with pytest.raises(ValueError, match=r"points must have shape \(K, "):
        evaluate_points(model, points[:, :-1], x, y)
    with pytest.raises(ValueError, match="needs a CUDA device"):
        evaluate_points(model, points, x, y, precision="bf16")
    with pytest.raises(ValueError, match="unknown precision"):
        evaluate_points(model, points, x, y, precision="fp16")
    with pytest.raises(ValueError, match="same nonzero number of samples"):
        evaluate_points(model, points, x, y[:3])


def test_precision_applies_on_cuda_only():
    from lossatlas.evaluate import precision_for
    assert precision_for("bf16", torch.device("cpu")) == "fp32"
    assert precision_for("tf32", torch.device("cuda")) == "tf32"
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        precision_for("fp8", torch.device("cpu"))
