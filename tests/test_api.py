"""lossatlas.api on a network defined only here: its values against direct per-point loops, the
engine's own functions and a dense Hessian; its files against its arrays; and the README example,
run as written."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lossatlas import api, io, landscape
from lossatlas.params import get_flat_params, normalize_direction, param_layout, set_flat_params_

ROOT = Path(__file__).resolve().parents[1]


class TinyNet(nn.Module):
    """A network the engine has never seen: two linear layers with a tanh, in float64."""

    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(4, 5)
        self.out = nn.Linear(5, 3)

    def forward(self, x):
        return self.out(torch.tanh(self.hidden(x)))


@pytest.fixture
def setup():
    torch.manual_seed(0)
    model = TinyNet().double()
    x, y = torch.randn(60, 4, dtype=torch.float64), torch.randint(0, 3, (60,))
    return model, (x[:40], y[:40]), (x[40:], y[40:])


def loop_metrics(model, theta, x, y):
    """Loss and accuracy of ``model`` at θ, one full-set forward pass; the logits rounded to
    float32 as the engine rounds them (so losses agree to float32 precision, 1e-6 relative)."""
    model = TinyNet().double()
    set_flat_params_(model, theta)
    with torch.no_grad():
        logits = model(x)
    return F.cross_entropy(logits.float(), y).item(), (logits.argmax(1) == y).double().mean().item()


def test_surface_1d_equals_a_loop_along_the_seeded_filter_normalized_direction(setup, tmp_path):
    model, train, test = setup
    alphas = np.linspace(-1, 1, 7)
    surface = api.surface_1d(model, "cross_entropy", train, test, alphas, seed=3,
                             path=tmp_path / "line.h5")
    theta, layout = get_flat_params(model), param_layout(model)
    raw = landscape.random_directions(theta, layout, 1, 3, method="none", ignore_biasbn=False)[0]
    direction = normalize_direction(raw, theta, layout, "filter", ignore_biasbn=True)
    for split, (x, y) in (("train", train), ("test", test)):
        expected = np.array([loop_metrics(model, theta + a * direction, x, y) for a in alphas])
        np.testing.assert_allclose(surface.arrays[f"{split}_loss"], expected[:, 0], rtol=1e-6)
        # loss-landscape's units: accuracy in percent
        np.testing.assert_allclose(surface.arrays[f"{split}_acc"], 100 * expected[:, 1], rtol=1e-12)
    arrays, attrs = io.read_h5(tmp_path / "line.h5")
    for name, array in surface.arrays.items():
        np.testing.assert_array_equal(arrays[name], array)
    assert attrs["normalization"] == "filter" and attrs["direction_seed"] == 3


def test_surface_2d_is_the_engine_surface_and_a_loop(setup):
    model, train, test = setup
    xs, ys = np.linspace(-1, 1, 3), np.linspace(-0.5, 0.5, 4)
    directions = torch.randn(2, param_layout(model).dim, dtype=torch.float64)
    surface = api.surface_2d(model, "cross_entropy", train, test, xs, ys, directions=directions)
    theta = get_flat_params(model)
    engine = landscape.surface_2d(model, theta, *directions, xs, ys, (*train, *test))
    for name, array in engine.arrays.items():
        np.testing.assert_array_equal(surface.arrays[name], array)
    loss, accuracy = loop_metrics(model, theta + xs[2] * directions[0] + ys[1] * directions[1],
                                  *train)
    # loss-landscape's layout [iy, ix] and units (percent)
    assert surface.arrays["train_loss"][1, 2] == pytest.approx(loss, rel=1e-6)
    assert surface.arrays["train_acc"][1, 2] == pytest.approx(100 * accuracy, rel=1e-12)


def test_interpolation_between_checkpoint_files_equals_a_loop(setup, tmp_path):
    model, train, test = setup
    end = TinyNet().double()
    io.save_state_dict(end.state_dict(), tmp_path / "end.pt")
    alphas = [0.0, 0.25, 1.0, 1.5]
    surface = api.interpolation(model, "cross_entropy", model, tmp_path / "end.pt", train, test,
                                alphas)
    theta0, theta1 = get_flat_params(model), get_flat_params(end)
    expected = [loop_metrics(model, (1 - a) * theta0 + a * theta1, *test)[0] for a in alphas]
    np.testing.assert_allclose(surface.arrays["test_loss"], expected, rtol=1e-6)
    assert surface.attrs["distance"] == pytest.approx(float((theta1 - theta0).norm()))


def test_a_checkpoint_of_another_architecture_is_an_error_naming_it(setup, tmp_path):
    model, train, test = setup
    io.save_state_dict(nn.Linear(4, 3).state_dict(), tmp_path / "other.pt")
    with pytest.raises(ValueError, match="other.pt does not fit the model TinyNet"):
        api.interpolation(model, "cross_entropy", model, tmp_path / "other.pt", train, test, [0.5])


def test_curvature_equals_the_dense_hessian(setup, tmp_path):
    model, train, _ = setup
    dim = param_layout(model).dim
    measurement = api.curvature(model, "cross_entropy", train, top_k=3, tol=1e-12,
                                max_iter=dim, trace_products=3 * dim, density_vectors=2,
                                density_steps=10, path=tmp_path / "curvature.h5")
    fmodel_theta = get_flat_params(model)
    layout = param_layout(model)

    def loss(theta):
        params = layout.unflatten(theta)
        return F.cross_entropy(torch.func.functional_call(model, params, (train[0],)), train[1])

    exact = torch.linalg.eigvalsh(torch.func.hessian(loss)(fmodel_theta))
    np.testing.assert_allclose(measurement.arrays["hessian_top"], exact.flip(0)[:3], rtol=1e-9)
    assert measurement.attrs["trace"] == pytest.approx(exact.sum().item(), rel=1e-9)
    arrays, attrs = io.read_h5(tmp_path / "curvature.h5")
    np.testing.assert_array_equal(arrays["hessian_top"], measurement.arrays["hessian_top"])
    grid, density = arrays["density_grid"], arrays["density"]
    assert np.sum(density[:-1] * np.diff(grid)) == pytest.approx(1.0, abs=1e-3)
    assert attrs["loss"] == pytest.approx(loss(fmodel_theta).item(), rel=1e-12)


def test_a_dataloader_gives_the_values_of_tensors(setup):
    model, train, test = setup
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*train), batch_size=7,
                                         shuffle=True)
    from_tensors = api.surface_1d(model, "cross_entropy", train, test, [0.0, 0.5])
    from_loader = api.surface_1d(model, "cross_entropy", loader, test, [0.0, 0.5])
    np.testing.assert_allclose(from_loader.arrays["train_loss"], from_tensors.arrays["train_loss"],
                               rtol=1e-6)


def test_readme_example_runs_as_written(tmp_path, monkeypatch):
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Your own model, from Python", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    arrays, _ = io.read_h5(tmp_path / "surface.h5")
    np.testing.assert_array_equal(arrays["train_loss"], namespace["plane"].arrays["train_loss"])
    assert arrays["train_loss"].shape == (7, 5)  # [iy, ix]: 7 y values, 5 x values
    assert (tmp_path / "curvature.h5").exists()
