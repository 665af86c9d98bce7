"""The workflow on a user's own model (``model.factory``), dataset (``dataset.path``) and checkpoint
files (``runs.NAME.checkpoints``): every figure plans on them, a curvature measurement of a user's
checkpoints (an init -> final line) equals ``lossatlas.api`` on the same network, and a bad factory, checkpoint or dataset
stops Snakemake before any job runs, naming it (the engine's checks behind these errors are tested
case by case, without Snakemake, in test_user_inputs.py)."""

import os
import re

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from test_workflow import snakemake, workdir  # noqa: F401 (the copied workflow fixture)

from lossatlas import api, io
from lossatlas.data import dataset_info

USER_MODULE = '''
from torch import nn


def make(hidden=8):
    """A user's network: signals (2, 5) -> 3 classes."""
    return nn.Sequential(nn.Flatten(), nn.Linear(10, hidden), nn.ReLU(), nn.Linear(hidden, 3))
'''


def user_model(seed, hidden=8):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(10, hidden), torch.nn.ReLU(),
                               torch.nn.Linear(hidden, 3))


@pytest.fixture(scope="module")
def user_files(workdir):  # noqa: F811
    """The user's module, dataset (.npz) and checkpoints (state dicts) in the workflow copy."""
    (workdir / "usernet.py").write_text(USER_MODULE)
    generator = np.random.default_rng(0)
    arrays = {"x_train": generator.normal(size=(120, 2, 5)).astype(np.float32),
              "y_train": generator.integers(0, 3, 120), "x_test": generator.normal(size=(40, 2, 5)),
              "y_test": generator.integers(0, 3, 40)}
    (workdir / "data").mkdir()
    np.savez(workdir / "data/blobs.npz", **arrays)
    np.savez(workdir / "data/wide.npz", **{**arrays, "x_train": np.zeros((120, 3, 5)),
                                           "x_test": np.zeros((40, 3, 5))})
    io.save_state_dict(user_model(0, hidden=5).state_dict(), workdir / "ckpt/foreign.pt")
    files = {"sb/init.pt": 1, "sb/final.pt": 2, "lb/final.pt": 3, "lbsb/final.pt": 4,
             **{f"sb/epoch{e}.pt": 10 + e for e in range(4)},
             **{f"sb/step{s}.pt": 20 + s for s in range(4, 7)},
             **{f"gd/epoch{e}.pt": 30 + e for e in (0, 3)}, "gd/final.pt": 33,
             **{f"wedge/init{s}.pt": 40 + s for s in range(3)},
             **{f"wedge/final{s}.pt": 50 + s for s in range(3)},
             **{f"wedge/s{s}/epoch{e}.pt": 60 + 4 * s + e for s in range(3) for e in range(4)}}
    for name, seed in files.items():
        io.save_state_dict(user_model(seed).state_dict(), workdir / "ckpt" / name)
    return arrays


def user_config(workdir, name, **overrides):
    """The smoke config on the user's model, dataset and checkpoint files: every run group that
    a figure uses is given by files, none is trained."""
    config = yaml.safe_load((workdir / "config/smoke.yaml").read_text())
    config["dataset"] = {"name": "blobs", "path": "data/blobs.npz"}
    config["model"] = {"name": "usernet", "factory": "usernet:make", "kwargs": {"hidden": 8}}
    config["runs"] = {
        "sb": {"checkpoints": {"final": "ckpt/sb/final.pt", "init": "ckpt/sb/init.pt",
                               "epoch": "ckpt/sb/epoch{epoch}.pt", "step": "ckpt/sb/step{step}.pt"},
               "checkpoint_epochs": [0, 1, 2, 3], "epochs": 3, "batch_size": 32,
               "checkpoint_step_range": [4, 7]},
        "lb": {"checkpoints": {"final": "ckpt/lb/final.pt", "init": "ckpt/sb/init.pt"}},
        "lb_then_sb": {"checkpoints": {"final": "ckpt/lbsb/final.pt"}},
        "gd": {"checkpoints": {"final": "ckpt/gd/final.pt", "epoch": "ckpt/gd/epoch{epoch}.pt"},
               "checkpoint_epochs": [0, 3]},
        "wedge": {"seeds": [0, 1, 2],
                  "checkpoints": {"final": "ckpt/wedge/final{seed}.pt",
                                  "init": "ckpt/wedge/init{seed}.pt",
                                  "epoch": "ckpt/wedge/s{seed}/epoch{epoch}.pt"},
                  "checkpoint_epochs": [0, 1, 2, 3], "epochs": 3},
    }
    # sweeps of knobs a factory model has (no width)
    config["sweeps"] = {
        "grid": {**config["sweeps"]["grid"], "load": {"knob": "label_noise", "values": [0.0, 0.2]}},
        "lr": config["sweeps"]["lr"], "l2": config["sweeps"]["l2"]}
    config["figures"]["hyperparams_curvature"] = {"sweeps": ["lr", "l2"]}
    for key, value in overrides.items():
        section = config
        *parents, last = key.split(".")
        for parent in parents:
            section = section[parent]
        section[last] = value
    path = workdir / "config" / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return f"config/{name}.yaml"


def test_every_figure_plans_on_user_checkpoints_without_training_them(workdir, user_files):  # noqa: F811
    result = snakemake(workdir, "-n", "--configfile", user_config(workdir, "user"))
    plan = result.stdout + result.stderr
    assert "import_run" in plan and "import_run_init" in plan
    for run in ("sb-s0", "lb-s0", "lb_then_sb-s0", "gd-s0", "wedge-s2"):
        assert f"results/user/runs/blobs/usernet/{run}/final.pt" in plan
    makers = {}  # run directory -> the rules whose jobs write its final.pt
    for rule, block in re.findall(r"^(?:local)?rule (\S+):\n((?:    .*\n)*)", plan, re.M):
        outputs = re.search(r"^    output: (.*)$", block, re.M)
        for run in re.findall(r"results/user/runs/blobs/usernet/([^/]+)/final\.pt", outputs.group(1)
                              if outputs else ""):
            makers.setdefault(run, set()).add(rule)
    for run in ("sb-s0", "lb-s0", "lb_then_sb-s0", "gd-s0", "wedge-s0", "wedge-s2"):
        assert makers[run] == {"import_run"}, (run, makers[run])
    trained = {run for run, rules in makers.items() if rules != {"import_run"}}
    assert trained and all(run.startswith(("subspace_", "grid_", "lr_", "l2_")) for run in trained)
    assert "Exception" not in plan


def test_a_user_checkpoint_measured_by_the_workflow_equals_the_api(workdir, user_files):  # noqa: F811
    configfile = user_config(workdir, "measure", **{"training.train_fraction": 1.0})
    target = "results/measure/measurements/blobs/usernet/mli/sb-s0.curve.csv"
    snakemake(workdir, target, "--configfile", configfile)
    curve = pd.read_csv(workdir / target)
    alphas = np.array(curve.loc[curve["split"] == "train", "alpha"])
    train = (torch.from_numpy(user_files["x_train"]), torch.from_numpy(user_files["y_train"]))
    test = (torch.from_numpy(user_files["x_test"]), torch.from_numpy(user_files["y_test"]))
    expected = api.interpolation(user_model(0), "cross_entropy", workdir / "ckpt/sb/init.pt",
                                 workdir / "ckpt/sb/final.pt", train, test, alphas)
    for split in ("train", "test"):
        rows = curve[curve["split"] == split]
        np.testing.assert_allclose(rows["loss"], expected.arrays[f"{split}_loss"], rtol=1e-6)
        # the MLI table keeps fractions; the API's arrays are loss-landscape's percent
        np.testing.assert_allclose(100 * rows["accuracy"], expected.arrays[f"{split}_acc"],
                                   rtol=1e-12)


@pytest.mark.parametrize("override, culprit", [
    ({"model.factory": "nosuchpackage.nets:make"},
     "config model.factory: model factory 'nosuchpackage.nets:make': cannot import module "
     "'nosuchpackage.nets'"),
    ({"runs.lb.checkpoints": {"final": "ckpt/foreign.pt"}},
     "config runs.lb.checkpoints.final (final of run lb-s0): checkpoint ckpt/foreign.pt does not "
     "fit model usernet"),
    ({"dataset.path": "data/wide.npz"},
     "model 'usernet' (usernet:make) on dataset data/wide.npz cannot take inputs of shape (N, 3, 5)"),
])
def test_a_bad_user_model_checkpoint_or_dataset_stops_before_any_job(workdir, user_files,  # noqa: F811
                                                                     override, culprit):
    """A dry run asked to check the model (model.check_in_dry_run) stops as a real run would."""
    configfile = user_config(workdir, "bad", **{"model.check_in_dry_run": True, **override})
    result = snakemake(workdir, "-n", "--configfile", configfile, check=False)
    assert result.returncode != 0
    assert culprit in result.stdout + result.stderr


def test_a_dry_run_does_not_run_the_model_factory_unless_asked(workdir, user_files):  # noqa: F811
    """model.factory is code the config names: a plain dry run neither imports nor calls it; one
    asked to check the model calls it (here it creates a file, then is refused as no model)."""
    pwned = workdir / "pwned"
    factory = {"model.factory": "subprocess:run",
               "model.kwargs": {"args": f"touch {pwned}", "shell": True}}
    result = snakemake(workdir, "-n", "--configfile", user_config(workdir, "factory", **factory))
    assert not pwned.exists()
    assert "model.factory 'subprocess:run' is neither imported nor called" in result.stderr
    checked = user_config(workdir, "factory_checked", **factory, **{"model.check_in_dry_run": True})
    result = snakemake(workdir, "-n", "--configfile", checked, check=False)
    assert pwned.exists() and result.returncode != 0
    assert "returned CompletedProcess, not an nn.Module" in result.stdout + result.stderr


def test_checkpoints_and_datasets_are_data_never_code(tmp_path):
    """A pickle that runs a command when unpickled, given as a checkpoint of your own or inside a
    dataset .npz, is refused without running it."""
    pwned = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {pwned}",)

    checkpoint = tmp_path / "evil.pt"
    torch.save({"w": Payload()}, checkpoint)
    with pytest.raises(io.CorruptFileError, match="evil.pt"):
        io.load_state_dict(checkpoint, verify=False)
    dataset = tmp_path / "evil.npz"
    x = np.empty((4, 2), dtype=object)
    x[:] = Payload()
    np.savez(dataset, x_train=x, y_train=np.zeros(4, int), x_test=x, y_test=np.zeros(4, int))
    with pytest.raises(ValueError, match="evil.npz"):
        dataset_info("evil", dataset)
    assert not pwned.exists()
