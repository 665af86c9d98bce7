"""The vmapped batch trainer: every member equals the same run trained alone by ``train_run``."""

import dataclasses
import math

import pytest
import torch

from lossatlas.data import DatasetTensors
from lossatlas.models import build_model
from lossatlas.parameterizations import BezierCurve, build_parameterization
from lossatlas.params import get_flat_params
from lossatlas.train import Member, TrainSettings, batch_incompatibility, init_model, train_members, train_run

from test_train import make_model, synthetic_data

TOLERANCE = dict(rtol=1e-4, atol=1e-5)


def noisy(data: DatasetTensors, seed: int) -> DatasetTensors:
    """``data`` with a seeded 20% of its training labels redrawn (a label-noise member)."""
    g = torch.Generator().manual_seed(seed)
    y = data.y_train.clone()
    flip = torch.rand(len(y), generator=g) < 0.2
    y[flip] = torch.randint(0, 4, (int(flip.sum()),), generator=g)
    return dataclasses.replace(data, y_train=y)


def assert_same_run(batched, alone):
    assert batched.status == alone.status and batched.steps == alone.steps
    assert batched.divergence == alone.divergence
    assert [r["epoch"] for r in batched.history] == [r["epoch"] for r in alone.history]
    for row_b, row_a in zip(batched.history, alone.history):
        for key in ("train_loss", "train_acc", "test_loss", "test_acc", "param_norm",
                    "dist_from_init", "grad_norm", "lr", "step"):
            if isinstance(row_a[key], float) and math.isnan(row_a[key]):
                assert math.isnan(row_b[key]), key
            else:
                assert row_b[key] == pytest.approx(row_a[key], rel=1e-4, abs=1e-5), key
    assert batched.trajectory.keys() == alone.trajectory.keys()
    for label in alone.trajectory:
        for name, value in alone.trajectory[label].items():
            torch.testing.assert_close(batched.trajectory[label][name], value, **TOLERANCE)
    for name, value in alone.final_state.items():
        torch.testing.assert_close(batched.final_state[name], value, **TOLERANCE)
    assert batched.trainable.keys() == alone.trainable.keys()
    assert batched.parameterization == alone.parameterization


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_batch_equals_runs_one_by_one(optimizer):
    data = synthetic_data()
    base = TrainSettings(optimizer=optimizer, epochs=3, batch_size=48, checkpoint_epochs=(0, 2, 3),
                         checkpoint_step_range=(4, 7))
    knobs = [dict(lr=0.05 if optimizer == "sgd" else 0.01), dict(lr=0.02, weight_decay=1e-3),
             dict(lr=0.03, momentum=0.5)]
    runs = [(seed, dataclasses.replace(base, **knob), noisy(data, seed) if seed == 2 else data)
            for seed, knob in enumerate(knobs)]
    batched = train_members([Member(make_model(seed), d, s, seed) for seed, s, d in runs])
    for (seed, s, d), result in zip(runs, batched):
        assert_same_run(result, train_run(make_model(seed), d, s, seed))


def test_batch_of_curves_equals_curves_one_by_one():
    data = synthetic_data()
    settings = TrainSettings(epochs=2, batch_size=64, schedule="garipov", checkpoint_epochs=(0, 2))
    ends = [torch.stack([get_flat_params(make_model(a)), get_flat_params(make_model(b))])
            for a, b in [(0, 1), (2, 3)]]
    members = [Member(make_model(0), data, settings, seed, BezierCurve(e, l2=1e-3))
               for seed, e in enumerate(ends)]
    batched = train_members(members)
    for seed, (e, result) in enumerate(zip(ends, batched)):
        alone = train_run(make_model(0), data, settings, seed,
                          parameterization=BezierCurve(e, l2=1e-3))
        assert_same_run(result, alone)


def test_batch_of_subspaces_equals_subspaces_one_by_one():
    data = synthetic_data()
    settings = TrainSettings(optimizer="adam", lr=0.05, epochs=2, batch_size=64)
    spec = {"kind": "subspace", "dim": 20}
    members = [Member(make_model(seed), data, settings, seed,
                      build_parameterization({**spec, "seed": seed}, get_flat_params(make_model(seed))))
               for seed in range(2)]
    batched = train_members(members)
    for seed, result in enumerate(batched):
        alone = train_run(make_model(seed), data, settings, seed, parameterization=build_parameterization(
            {**spec, "seed": seed}, get_flat_params(make_model(seed))))
        assert_same_run(result, alone)


def test_diverged_member_is_frozen_and_the_others_go_on():
    data = synthetic_data()
    good = TrainSettings(epochs=3, batch_size=32, lr=0.05, checkpoint_epochs=(0, 3))
    bad = dataclasses.replace(good, lr=1e4)
    batched = train_members([Member(make_model(0), data, good, 0),
                             Member(make_model(1), data, bad, 1)])
    alone_bad = train_run(make_model(1), data, bad, 1)
    assert batched[1].status == "diverged" == alone_bad.status
    assert batched[1].divergence == alone_bad.divergence
    assert len(batched[1].history) == len(alone_bad.history) < 4
    assert batched[0].status == "ok" and len(batched[0].history) == 4
    assert_same_run(batched[0], train_run(make_model(0), data, good, 0))


def test_resume_after_interruption_gives_the_same_batch(tmp_path):
    data = synthetic_data()
    settings = TrainSettings(epochs=3, batch_size=64, checkpoint_epochs=(0, 3))
    members = lambda: [Member(make_model(s), data, dataclasses.replace(settings, lr=0.01 * (s + 1)), s)
                       for s in range(2)]
    resume = tmp_path / "resume.pt"
    uninterrupted = train_members(members())
    short = [dataclasses.replace(m, settings=dataclasses.replace(m.settings, steps=8)) for m in members()]
    train_members(short, resume_path=resume)
    assert resume.exists()
    # the file of the shortened batch belongs to other runs (other settings): a fresh start
    again = train_members(members(), resume_path=resume)
    for a, b in zip(again, uninterrupted):
        assert_same_run(a, b)


def test_incompatible_members_are_named():
    data = synthetic_data()
    settings = TrainSettings(epochs=1)
    wide = init_model(lambda: build_model("mlp", (1, 40), 4, width=32, depth=1), 0)
    assert "architecture" in batch_incompatibility(
        [Member(make_model(0), data, settings, 0), Member(wide, data, settings, 1)])
    assert "batch_size" in batch_incompatibility(
        [Member(make_model(0), data, settings, 0),
         Member(make_model(1), data, dataclasses.replace(settings, batch_size=8), 1)])
    assert "batch norm" in batch_incompatibility([Member(make_model(0, "batch"), data, settings, 0)])
    with pytest.raises(ValueError, match="batch_size"):
        train_members([Member(make_model(0), data, settings, 0),
                       Member(make_model(1), data, dataclasses.replace(settings, batch_size=8), 1)])
