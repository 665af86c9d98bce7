"""The ``lossatlas`` command line, run as a user runs it (``python -m lossatlas.cli``, the module the
console script calls) on a model and data defined only here: help on every subcommand, each
subcommand's file against ``lossatlas.api`` called directly, ``plot`` on its files, errors naming
the culprit, and the console entry point declared in pyproject.toml."""

import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch

from lossatlas import api, io
from lossatlas.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
SUBCOMMANDS = ["surface-1d", "surface-2d", "interpolate", "curvature", "plot"]
FACTORY = textwrap.dedent("""
    import torch
    from torch import nn


    def build(hidden=5):
        torch.manual_seed(0)
        return nn.Sequential(nn.Flatten(), nn.Linear(4, hidden), nn.Tanh(), nn.Linear(hidden, 3))
""")


def lossatlas(cwd, *args, check=True):
    """Run ``python -m lossatlas.cli ARGS`` in ``cwd`` with this checkout's sources first."""
    env = {"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-m", "lossatlas.cli", *args], cwd=cwd, env=env,
                            capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"lossatlas {' '.join(args)} failed:\n{result.stderr}")
    return result


def parameter_count(folder):
    """D of the model: every parameter of ``end.pt`` is ``start.pt``'s plus 0.5."""
    return sum(tensor.numel() for tensor in torch.load(folder / "end.pt").values())


@pytest.fixture(scope="module")
def user_files(tmp_path_factory):
    """A folder with a factory module, two checkpoints of its model and a data file."""
    folder = tmp_path_factory.mktemp("user")
    (folder / "mynet.py").write_text(FACTORY)
    sys.path.insert(0, str(folder))
    try:
        import mynet
    finally:
        sys.path.remove(str(folder))
    start, end = mynet.build(), mynet.build()
    with torch.no_grad():
        for parameter in end.parameters():
            parameter.add_(0.5)
    torch.save(start.state_dict(), folder / "start.pt")
    torch.save(end.state_dict(), folder / "end.pt")
    generator = np.random.default_rng(0)
    np.savez(folder / "data.npz", x_train=generator.normal(size=(30, 4)).astype(np.float32),
             y_train=generator.integers(0, 3, 30), x_test=generator.normal(size=(12, 4))
             .astype(np.float32), y_test=generator.integers(0, 3, 12))
    return folder, mynet.build()


def test_every_subcommand_has_help():
    result = lossatlas(ROOT, "--help")
    for name in SUBCOMMANDS:
        assert name in result.stdout
        assert lossatlas(ROOT, name, "--help").stdout.startswith(f"usage: lossatlas {name}")


def test_the_console_script_is_declared_and_names_main():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"lossatlas": "lossatlas.cli:main"}


def test_surface_2d_writes_the_api_surface_and_plot_draws_it(user_files):
    folder, model = user_files
    lossatlas(folder, "surface-2d", "--model", "mynet:build", "--model-kwargs", '{"hidden": 5}',
              "--checkpoint", "end.pt", "--data", "data.npz", "--out", "plane.h5",
              "--xrange", "-1", "1", "--xnum", "5", "--yrange", "-0.5", "0.5", "--ynum", "3",
              "--seed", "2")
    arrays, attrs = io.read_h5(folder / "plane.h5")
    with np.load(folder / "data.npz") as data:
        train, test = (data["x_train"], data["y_train"]), (data["x_test"], data["y_test"])
    expected = api.surface_2d(api.load_checkpoint(model, folder / "end.pt"), "cross_entropy",
                              train, test, np.linspace(-1, 1, 5), np.linspace(-0.5, 0.5, 3),
                              seed=2)
    assert arrays["train_loss"].shape == (3, 5)
    for key, values in expected.arrays.items():
        np.testing.assert_array_equal(arrays[key], values, err_msg=key)
    assert attrs["direction_seed"] == 2 and attrs["normalization"] == "filter"
    result = lossatlas(folder, "plot", "plane.h5")
    assert result.stdout.strip() == "wrote plane.png"
    assert (folder / "plane.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_interpolate_runs_from_start_to_end(user_files):
    folder, _ = user_files
    lossatlas(folder, "interpolate", "--model", "mynet:build", "--start", "start.pt", "--end",
              "end.pt", "--data", "data.npz", "--out", "line.h5", "--range", "0", "1",
              "--points", "3")
    arrays, attrs = io.read_h5(folder / "line.h5")
    np.testing.assert_array_equal(arrays["xcoordinates"], [0.0, 0.5, 1.0])
    assert attrs["bn_policy"] == "none", "the model has no batch norm"
    assert attrs["distance"] == pytest.approx(0.5 * np.sqrt(parameter_count(folder)))
    lossatlas(folder, "plot", "line.h5", "--out", "line.pdf")
    assert (folder / "line.pdf").read_bytes()[:4] == b"%PDF"


def test_curvature_matches_the_api_and_plot_draws_it(user_files):
    folder, model = user_files
    lossatlas(folder, "curvature", "--model", "mynet:build", "--checkpoint", "end.pt", "--data",
              "data.npz", "--out", "curvature.h5", "--top-k", "3", "--density-steps", "10",
              "--density-vectors", "2", "--trace-products", "9")
    arrays, attrs = io.read_h5(folder / "curvature.h5")
    with np.load(folder / "data.npz") as data:
        train = (data["x_train"], data["y_train"])
    expected = api.curvature(api.load_checkpoint(model, folder / "end.pt"), "cross_entropy",
                             train, top_k=3, density_steps=10, density_vectors=2,
                             trace_products=9)
    np.testing.assert_allclose(arrays["hessian_top"], expected.arrays["hessian_top"], rtol=1e-6)
    assert attrs["top_k"] == 3
    lossatlas(folder, "plot", "curvature.h5", "--out", "curvature.png")
    assert (folder / "curvature.png").exists()


@pytest.mark.parametrize("args, culprit", [
    (["--model", "nosuchmodule:build", "--checkpoint", "end.pt", "--data", "data.npz"],
     "nosuchmodule"),
    (["--model", "mynet:build", "--checkpoint", "missing.pt", "--data", "data.npz"],
     "missing.pt"),
    (["--model", "mynet:build", "--model-kwargs", '{"hidden": 7}', "--checkpoint", "end.pt",
      "--data", "data.npz"], "end.pt"),
    (["--model", "mynet:build", "--checkpoint", "end.pt", "--data", "data.csv"], "data.csv"),
    (["--model", "mynet:build", "--checkpoint", "end.pt", "--data", "data.npz", "--range", "1",
      "-1"], "--range"),
])
def test_bad_input_exits_with_one_line_naming_it_and_writes_nothing(user_files, args, culprit):
    folder, _ = user_files
    result = lossatlas(folder, "surface-1d", *args, "--out", "bad.h5", check=False)
    assert result.returncode == 2
    assert result.stderr.startswith("lossatlas surface-1d: error:") and culprit in result.stderr
    assert not (folder / "bad.h5").exists()


def test_plot_names_a_file_it_cannot_draw(tmp_path):
    io.write_h5(tmp_path / "other.h5", {"weights": np.zeros(3)}, {})
    result = lossatlas(tmp_path, "plot", "other.h5", check=False)
    assert result.returncode == 2 and "other.h5" in result.stderr and "weights" in result.stderr


def test_options_shared_with_the_api_have_its_defaults():
    parser = build_parser()
    args = parser.parse_args(["surface-2d", "--model", "m:f", "--checkpoint", "c", "--data", "d",
                              "--out", "o"])
    assert (args.seed, args.normalization, args.include_biasbn, args.bn_policy, args.precision) \
        == (0, "filter", False, "keep", "fp32")
    args = parser.parse_args(["interpolate", "--model", "m:f", "--start", "a", "--end", "b",
                              "--data", "d", "--out", "o"])
    assert args.bn_policy == "recompute"
