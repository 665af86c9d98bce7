"""The one training loop: a batch of many members equals each member trained alone (a batch of
one, ``train_run``) and the same run written as a plain loop (``torch.optim`` on the module in
train mode); batch-norm members carry their own running statistics."""

import copy
import dataclasses
import json
import math

import pytest
import torch
import torch.nn.functional as F

from lossatlas import io
from lossatlas.data import DatasetTensors
from lossatlas.functional import FunctionalModel
from lossatlas.models import build_model
from lossatlas.parameterizations import BezierCurve, build_parameterization
from lossatlas.params import get_flat_params
from lossatlas.train import Member, TrainSettings, batch_incompatibility, init_model, train_members, train_run

from test_train import make_model, states_equal, synthetic_data

TOLERANCE = dict(rtol=1e-4, atol=1e-5)


def noisy(data: DatasetTensors, seed: int) -> DatasetTensors:
    """``data`` with a seeded 20% of its training labels redrawn (a label-noise member)."""
    g = torch.Generator().manual_seed(seed)
    y = data.y_train.clone()
    flip = torch.rand(len(y), generator=g) < 0.2
    y[flip] = torch.randint(0, 4, (int(flip.sum()),), generator=g)
    return dataclasses.replace(data, y_train=y)


def plain_run(model, data, settings, seed):
    """The run as a plain loop: ``torch.optim`` on ``model`` in train mode, the minibatches in
    the order of a generator seeded with ``seed`` (constant schedule); the model afterwards."""
    if settings.optimizer == "sgd":
        optimizer = torch.optim.SGD(model.parameters(), lr=settings.lr, momentum=settings.momentum,
                                    weight_decay=settings.weight_decay)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr,
                                     weight_decay=settings.weight_decay)
    generator = torch.Generator().manual_seed(seed)
    n_train = len(data.y_train)
    model.train()
    for _ in range(settings.epochs):
        order = torch.randperm(n_train, generator=generator)
        for start in range(0, n_train, settings.batch_size):
            index = order[start:start + settings.batch_size]
            optimizer.zero_grad()
            F.cross_entropy(model(data.x_train[index]), data.y_train[index]).backward()
            optimizer.step()
    return model.eval()


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
        assert list(batched.trajectory[label]) == list(alone.trajectory[label])
        for name, value in alone.trajectory[label].items():
            torch.testing.assert_close(batched.trajectory[label][name], value, **TOLERANCE)
    assert list(batched.final_state) == list(alone.final_state)
    for name, value in alone.final_state.items():
        torch.testing.assert_close(batched.final_state[name], value, **TOLERANCE)
    assert batched.trainable.keys() == alone.trainable.keys()
    assert batched.parameterization == alone.parameterization


@pytest.mark.parametrize("norm", ["none", "batch"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_batch_equals_batches_of_one_and_the_plain_loop(optimizer, norm):
    data = synthetic_data()
    base = TrainSettings(optimizer=optimizer, epochs=3, batch_size=48, checkpoint_epochs=(0, 2, 3),
                         checkpoint_step_range=(4, 7))
    knobs = [dict(lr=0.05 if optimizer == "sgd" else 0.01), dict(lr=0.02, weight_decay=1e-3),
             dict(lr=0.03, momentum=0.5)]
    runs = [(seed, dataclasses.replace(base, **knob), noisy(data, seed) if seed == 2 else data)
            for seed, knob in enumerate(knobs)]
    batched = train_members([Member(make_model(seed, norm), d, s, seed) for seed, s, d in runs])
    for (seed, s, d), result in zip(runs, batched):
        assert_same_run(result, train_run(make_model(seed, norm), d, s, seed))
        plain = plain_run(make_model(seed, norm), d, s, seed)
        assert list(result.final_state) == list(plain.state_dict())
        for name, value in plain.state_dict().items():
            torch.testing.assert_close(result.final_state[name], value, **TOLERANCE)
        with torch.no_grad():
            plain_loss = float(F.cross_entropy(plain(d.x_train), d.y_train))
        assert result.history[-1]["train_loss"] == pytest.approx(plain_loss, rel=1e-4, abs=1e-5)


def test_batch_norm_members_keep_their_own_running_statistics():
    data = synthetic_data()
    settings = TrainSettings(epochs=2, batch_size=32)
    first, second = train_members([Member(make_model(seed, "batch"), data, settings, seed)
                                   for seed in range(2)])
    assert int(first.final_state["2.num_batches_tracked"]) == 2 * 256 // 32
    assert not torch.equal(first.final_state["2.running_mean"],
                           second.final_state["2.running_mean"])
    assert not torch.equal(first.final_state["2.running_mean"],
                           first.init_state["2.running_mean"])


def test_train_loss_returns_the_statistics_module_training_gives():
    model = make_model(0, "batch")
    fmodel = FunctionalModel(model, bn_mode="train")
    x, y = synthetic_data().x_train[:32], synthetic_data().y_train[:32]
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    loss, updated = fmodel.train_loss(get_flat_params(model), buffers, x, y)
    module = copy.deepcopy(model).train()
    with torch.no_grad():
        module_loss = float(F.cross_entropy(module(x), y))
    assert float(loss.detach()) == pytest.approx(module_loss, rel=1e-6)
    assert states_equal(buffers, dict(model.named_buffers()))
    for name, buffer in module.named_buffers():
        torch.testing.assert_close(updated[name], buffer)
    with pytest.raises(ValueError, match="bn_mode='train'"):
        FunctionalModel(model).train_loss(get_flat_params(model), buffers, x, y)


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


def test_subspace_members_sharing_a_projection_train_as_they_would_alone():
    """The subspace figure's batches: members of one projection seed at several init scales hold
    one A (one product per step for all of them) and end as each would alone."""
    data = synthetic_data()
    settings = TrainSettings(optimizer="adam", lr=0.05, epochs=2, batch_size=64)
    spec = {"kind": "subspace", "dim": 20, "seed": 3}

    def member_at(scale, seed):
        model = make_model(seed)
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.mul_(scale)
        return model, build_parameterization({**spec, "seed": seed}, get_flat_params(model))

    shapes = [(1.0, 0), (2.0, 0), (1.0, 1), (0.5, 0)]
    members = [Member(model, data, settings, seed, parameterization)
               for (scale, seed), (model, parameterization)
               in zip(shapes, [member_at(scale, seed) for scale, seed in shapes])]
    assert members[0].parameterization.projection is members[3].parameterization.projection
    batched = train_members(members)
    for (scale, seed), result in zip(shapes, batched):
        model, parameterization = member_at(scale, seed)
        assert_same_run(result, train_run(model, data, settings, seed,
                                          parameterization=parameterization))


def test_diverged_member_is_frozen_and_the_others_go_on():
    data = synthetic_data()
    good = TrainSettings(epochs=3, batch_size=32, lr=0.05, checkpoint_epochs=(0, 3))
    bad = dataclasses.replace(good, lr=1e4)
    batched = train_members([Member(make_model(0, "batch"), data, good, 0),
                             Member(make_model(1, "batch"), data, bad, 1)])
    alone_bad = train_run(make_model(1, "batch"), data, bad, 1)
    assert batched[1].status == "diverged" == alone_bad.status
    assert batched[1].divergence == alone_bad.divergence
    assert len(batched[1].history) == len(alone_bad.history) < 4
    assert batched[0].status == "ok" and len(batched[0].history) == 4
    assert_same_run(batched[0], train_run(make_model(0, "batch"), data, good, 0))


def without_time(history):
    """The history as text (NaN compares equal), without the wall times."""
    return json.dumps([{k: v for k, v in row.items() if k != "wall_time_s"} for row in history])


class Killed(Exception):
    """Stands for a kill right after a resume file was written."""


@pytest.mark.parametrize("norm", ["none", "batch"])
def test_batch_resumed_after_a_kill_equals_the_uninterrupted_batch(tmp_path, monkeypatch, norm):
    data = synthetic_data()
    settings = TrainSettings(epochs=3, batch_size=64, checkpoint_epochs=(0, 3))
    members = lambda: [Member(make_model(s, norm), data, dataclasses.replace(settings, lr=0.01 * (s + 1)), s)
                       for s in range(2)]
    uninterrupted = train_members(members())
    resume, save_torch = tmp_path / "resume.pt", io.save_torch

    def save_then_kill_after_epoch_2(obj, path):
        save_torch(obj, path)
        if obj["epoch"] == 2:
            raise Killed

    monkeypatch.setattr(io, "save_torch", save_then_kill_after_epoch_2)
    with pytest.raises(Killed):
        train_members(members(), resume_path=resume)
    monkeypatch.undo()
    assert io.load_torch(resume)["epoch"] == 2
    resumed = train_members(members(), resume_path=resume)
    for a, b in zip(resumed, uninterrupted):
        assert states_equal(a.final_state, b.final_state)
        assert states_equal(a.trajectory["epoch-3"], b.trajectory["epoch-3"])
        assert without_time(a.history) == without_time(b.history)


def test_resume_file_of_another_batch_restarts_it(tmp_path):
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
        assert states_equal(a.final_state, b.final_state)


def test_incompatible_members_are_named():
    data = synthetic_data()
    settings = TrainSettings(epochs=1)
    wide = init_model(lambda: build_model("mlp", (1, 40), 4, width=32, depth=1), 0)
    assert "architecture" in batch_incompatibility(
        [Member(make_model(0), data, settings, 0), Member(wide, data, settings, 1)])
    assert "architecture" in batch_incompatibility(
        [Member(make_model(0), data, settings, 0), Member(make_model(1, "batch"), data, settings, 1)])
    assert "batch_size" in batch_incompatibility(
        [Member(make_model(0), data, settings, 0),
         Member(make_model(1), data, dataclasses.replace(settings, batch_size=8), 1)])
    assert batch_incompatibility([Member(make_model(s, "batch"), data, settings, s)
                                  for s in range(2)]) is None
    with pytest.raises(ValueError, match="batch_size"):
        train_members([Member(make_model(0), data, settings, 0),
                       Member(make_model(1), data, dataclasses.replace(settings, batch_size=8), 1)])
