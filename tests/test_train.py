"""Training: determinism, resume after SIGKILL, divergence, checkpoints along the trajectory."""

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from kill_mid_run import kill_mid_run
from lossatlas import io
from lossatlas.data import DatasetTensors
from lossatlas.models import build_model
from lossatlas.train import TrainSettings, init_model, train_run


def synthetic_data(n_train=256, n_test=64, seed=0):
    """Four Gaussian blobs in 40 dims, shaped like MNIST-1D samples (1, 40)."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(4, 1, 40, generator=g) * 2
    y_train = torch.randint(0, 4, (n_train,), generator=g)
    y_test = torch.randint(0, 4, (n_test,), generator=g)
    x_train = centers[y_train] + torch.randn(n_train, 1, 40, generator=g)
    x_test = centers[y_test] + torch.randn(n_test, 1, 40, generator=g)
    return DatasetTensors("blobs", x_train, y_train, x_test, y_test, ["a", "b", "c", "d"])


def make_model(seed, norm="none"):
    return init_model(lambda: build_model("mlp", (1, 40), 4, width=16, depth=1, norm=norm), seed)


def states_equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("norm", ["none", "batch"])
def test_same_seed_same_checkpoint(norm):
    data = synthetic_data()
    settings = TrainSettings(epochs=2, batch_size=32, checkpoint_epochs=(0, 1, 2))
    first = train_run(make_model(0, norm), data, settings, seed=0)
    second = train_run(make_model(0, norm), data, settings, seed=0)
    other = train_run(make_model(1, norm), data, settings, seed=1)
    assert states_equal(first.final_state, second.final_state)
    assert not states_equal(first.final_state, other.final_state)
    assert first.status == "ok" and [row["epoch"] for row in first.history] == [0, 1, 2]
    assert set(first.trajectory) == {"epoch-0", "epoch-1", "epoch-2"}
    assert states_equal(first.trajectory["epoch-0"], first.init_state)
    assert states_equal(first.trajectory["epoch-2"], first.final_state)


def test_learns_and_records_metrics():
    data = synthetic_data()
    result = train_run(make_model(0), data, TrainSettings(epochs=3, batch_size=16), seed=0)
    first, last = result.history[0], result.history[-1]
    assert last["train_loss"] < first["train_loss"]
    assert last["test_acc"] > 0.9
    assert first["dist_from_init"] == 0.0 and last["dist_from_init"] > 0
    assert math.isnan(first["grad_norm"]) and last["grad_norm"] > 0
    assert last["step"] == 3 * 16  # 256 samples / 16 per batch, 3 epochs


def test_steps_and_step_checkpoints():
    data = synthetic_data()
    settings = TrainSettings(epochs=5, batch_size=32, steps=10, checkpoint_step_range=(3, 6))
    result = train_run(make_model(0), data, settings, seed=0)
    assert result.steps == 10
    assert sorted(result.trajectory) == ["epoch-0", "step-3", "step-4", "step-5"]


def test_divergence_stops_and_is_recorded():
    data = synthetic_data()
    result = train_run(make_model(0), data, TrainSettings(epochs=20, batch_size=16, lr=1e12,
                                                          momentum=0.9), seed=0)
    assert result.status == "diverged"
    assert len(result.history) < 21


def test_finite_blow_up_is_divergence():
    data = synthetic_data()
    settings = TrainSettings(epochs=3, batch_size=256, lr=100.0, momentum=0.0)
    result = train_run(make_model(0), data, settings, seed=0)
    assert math.isfinite(result.history[-1]["train_loss"])
    assert result.status == "diverged" and len(result.history) == 2
    assert "exceeds divergence_loss_factor 100 x initial loss" in result.divergence
    lenient = train_run(make_model(0), data, TrainSettings(
        epochs=3, batch_size=256, lr=100.0, momentum=0.0, divergence_loss_factor=1e30), seed=0)
    assert lenient.status == "ok" and lenient.divergence is None


def test_a_run_that_leaves_a_fit_start_is_not_diverged():
    """A run started from a fit solution (loss ≈ 4e-5 nats) whose loss rises to a uniform
    prediction's (ln 4, weight decay pulling θ to 0) leaves a minimum; it has not diverged."""
    data = synthetic_data()
    model = make_model(0)
    fit = train_run(model, data, TrainSettings(optimizer="adam", lr=0.01, epochs=5, batch_size=32),
                    seed=0)
    assert fit.history[-1]["train_loss"] < 1e-3
    model.load_state_dict(fit.final_state)
    shrunk = train_run(model, data, TrainSettings(lr=0.1, momentum=0.0, weight_decay=5.0,
                                                  epochs=2, batch_size=32), seed=0)
    assert shrunk.history[-1]["train_loss"] > 100 * shrunk.history[0]["train_loss"]
    assert shrunk.status == "ok" and shrunk.divergence is None


def test_bad_settings_name_the_knob():
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
        TrainSettings(optimizer="rmsprop")
    with pytest.raises(ValueError, match="unknown schedule"):
        TrainSettings(schedule="step")
    for lr in (math.nan, math.inf):
        with pytest.raises(ValueError, match="finite lr"):
            TrainSettings(lr=lr)
    with pytest.raises(ValueError, match="divergence_loss_factor"):
        TrainSettings(divergence_loss_factor=1.0)


TRAIN_SCRIPT = textwrap.dedent("""
    import sys
    import torch
    sys.path.insert(0, {tests!r})
    from test_train import make_model, synthetic_data
    from lossatlas import io
    from lossatlas.train import TrainSettings, train_run
    torch.set_num_threads(1)
    data = synthetic_data(n_train=3000)
    settings = TrainSettings(epochs=8, batch_size=4, schedule="cosine", optimizer="sgd")
    result = train_run(make_model(0), data, settings, seed=0, resume_path=sys.argv[1])
    io.save_state_dict(result.final_state, sys.argv[2])
    io.write_json(result.history, sys.argv[3])
""")


def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path):
    script = tmp_path / "train_script.py"
    script.write_text(TRAIN_SCRIPT.format(tests=str(Path(__file__).parent)))
    python = sys.executable

    subprocess.run([python, script, tmp_path / "ref_resume.pt", tmp_path / "ref.pt",
                    tmp_path / "ref.json"], check=True)

    resume = tmp_path / "resume.pt"
    saved = kill_mid_run([python, script, resume, tmp_path / "final.pt", tmp_path / "history.json"],
                         resume)
    assert 1 <= saved["epoch"] < 8
    assert not (tmp_path / "final.pt").exists()

    subprocess.run([python, script, resume, tmp_path / "final.pt", tmp_path / "history.json"],
                   check=True)
    assert states_equal(io.load_state_dict(tmp_path / "final.pt"), io.load_state_dict(tmp_path / "ref.pt"))
    history = json.loads((tmp_path / "history.json").read_text())
    assert [row["epoch"] for row in history] == list(range(9))


IDENTITY = {"train_fraction": 0.5, "label_noise": 0.0, "model": {"width": 16, "depth": 1}}


@pytest.mark.parametrize("change", ["identity", "data subset", "model width"])
def test_resume_file_of_another_run_restarts_cleanly(tmp_path, change):
    """A resume.pt left by a killed run is not used by a run that differs in anything that
    defines it: the caller's identity, the training data actually passed, or the model."""
    settings = TrainSettings(epochs=2, batch_size=32)
    resume = tmp_path / "resume.pt"
    train_run(make_model(0), synthetic_data(), settings, seed=0, identity=IDENTITY,
              resume_path=resume)
    assert io.load_torch(resume)["epoch"] == 2

    data, identity = synthetic_data(), dict(IDENTITY)
    model = make_model(0)
    if change == "identity":
        identity["train_fraction"] = 0.6
    elif change == "data subset":
        data = synthetic_data(n_train=200)
    else:
        model = init_model(lambda: build_model("mlp", (1, 40), 4, width=24, depth=1), 0)
    fresh_model = {k: v.clone() for k, v in model.state_dict().items()}
    log = tmp_path / "train.log"
    with open(log, "w") as progress:
        result = train_run(model, data, settings, seed=0, identity=identity, resume_path=resume,
                           progress_file=progress)
    assert f"{resume} was written by another run" in log.read_text()
    assert "starting afresh" in log.read_text()
    assert [row["epoch"] for row in result.history] == [0, 1, 2]
    reference_model = build_model("mlp", (1, 40), 4, width=24 if change == "model width" else 16,
                                  depth=1)
    reference_model.load_state_dict(fresh_model)
    reference = train_run(reference_model, data, settings, seed=0, identity=identity)
    assert states_equal(result.final_state, reference.final_state)
