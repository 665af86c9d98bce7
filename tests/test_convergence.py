"""Structures trained to convergence: the criterion on loss sequences, tiny curves and complexes
with known answers (no barrier: stops after one round; a barrier that training removes: goes on
while it falls; a barrier held by a penalty: stops where it settles), the record in status.json,
members of one batch stopping at different rounds, restarted schedules twice as long, and resume
in the middle of a later round."""

import dataclasses
import json
import math

import pytest
import torch

from lossatlas import io
from lossatlas.parameterizations import BezierCurve, build_structure
from lossatlas.params import get_flat_params
from lossatlas.train import (Convergence, Member, TrainSettings, batch_incompatibility, converged,
                             convergence_detail, round_ends, status_record, train_members,
                             train_run)
from test_train import make_model, states_equal, synthetic_data

ROUND = TrainSettings(epochs=1, batch_size=32, lr=0.05, schedule="garipov")
RECORD_KEYS = {"converged", "epochs", "max_epochs", "criterion", "detail", "loss", "max_loss",
               "solution_loss", "mean_loss", "rounds"}


@pytest.mark.parametrize("losses, expected", [
    ([2.0, 1.0, 0.98], True),        # fell 2% < 5%: flattened
    ([2.0, 1.0, 0.8], False),        # fell 20%: still falling
    ([1.0, 0.951], True),            # fell 4.9%
    ([1.0, 0.95], False),            # fell exactly 5%: not less than the tolerance
    ([1.0, 0.5, 0.55], False),       # rose: noisier than the fall, not converged
    ([1.0, 0.5, 0.5], True),         # no change
    ([1.0, 0.0009], True),           # fell 99.9% but is below the 1e-3 floor
    ([1.0, 0.5, float("nan")], False),
    ([0.0, 0.0], True),
])
def test_criterion_on_loss_sequences(losses, expected):
    assert converged(losses, tolerance=0.05, floor=1e-3) is expected


def test_criterion_needs_a_round_and_its_settings_are_checked():
    with pytest.raises(ValueError, match="at least one round"):
        converged([1.0], 0.05, 1e-3)
    with pytest.raises(ValueError, match="tolerance"):
        Convergence(max_epochs=10, tolerance=1.0)
    with pytest.raises(ValueError, match="floor"):
        Convergence(max_epochs=10, floor=-1.0)
    with pytest.raises(ValueError, match="max_epochs"):
        Convergence(max_epochs=0)


def test_rounds_double():
    assert round_ends(20, 300) == [20, 60, 140, 300]
    assert round_ends(1, 1) == [1]
    with pytest.raises(ValueError, match="not the end of a round.*20, 60, 140, 300"):
        round_ends(20, 200)


def test_detail_says_why():
    assert convergence_detail([2.0, 1.0, 0.99], [0, 20, 60], 300, 0.05, 1e-3,
                              "max curve loss") == (
        "max curve loss fell 1.0%, less than 5%, in the last round (epochs 20 → 60: "
        "1 → 0.99 nats)")
    assert convergence_detail([2.0, 1.0, 0.8], [0, 20, 60], 60, 0.05, 1e-3,
                              "max complex loss") == (
        "max complex loss still falling 20.0% in the last round (epochs 20 → 60: 1 → 0.8 nats), "
        "at the cap of 60 epochs")
    assert "at most the floor of 0.001 nats after 20 epochs" in convergence_detail(
        [1.0, 5e-4], [0, 20], 300, 0.05, 1e-3)
    assert "rose 10.0% in the last round" in convergence_detail(
        [1.0, 0.5, 0.55], [0, 20, 60], 60, 0.05, 1e-3)


def solution_and_permuted():
    """A trained solution θ of the tiny MLP and the same network with its hidden units permuted:
    equal losses, a barrier on the straight line between them that a curve can go around."""
    solution = train_run(make_model(0), synthetic_data(), TrainSettings(epochs=10, batch_size=32),
                         seed=0)
    state = solution.final_state
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(0))
    permuted = {"1.weight": state["1.weight"][perm], "1.bias": state["1.bias"][perm],
                "4.weight": state["4.weight"][:, perm], "4.bias": state["4.bias"]}
    flat = []
    for values in (state, permuted):
        model = make_model(0)
        model.load_state_dict(values)
        flat.append(get_flat_params(model))
    return flat


def assert_stopped_by_the_rule(record, convergence, first_round):
    """The rounds (each twice the one before) go on exactly while the criterion does not hold."""
    losses = [r["loss"] for r in record["rounds"]]
    assert [r["epoch"] for r in record["rounds"]] == [0, *round_ends(first_round,
                                                                     record["epochs"])]
    for k in range(2, len(losses)):
        assert not converged(losses[:k], convergence.tolerance, convergence.floor)
    at_cap = record["epochs"] == convergence.max_epochs
    assert record["converged"] == converged(losses, convergence.tolerance, convergence.floor)
    assert record["converged"] or at_cap
    assert record["loss"] == losses[-1]
    for r in record["rounds"]:
        assert r["loss"] == pytest.approx(r["max_loss"] - r["solution_loss"])


def test_flat_structure_stops_and_a_falling_one_goes_on():
    """Known answers on a solution θ and its hidden-unit permutation: a curve from θ to itself is
    the point θ, its barrier 0 from the start (stops after one round); the barrier between θ and
    its permutation, which a curve can go around, halves with every doubling of the training (a
    power law: it goes on to the cap, never taken for converged); with a strong L2 penalty that
    holds the bend near the origin, the barrier settles at a positive value (stops there)."""
    theta, permuted = solution_and_permuted()
    data = synthetic_data()
    rule = Convergence(max_epochs=31, tolerance=0.05, floor=0.0)   # rounds of 1, 2, 4, 8, 16
    flat = train_run(make_model(0), data, ROUND, 0, convergence=rule,
                     parameterization=BezierCurve(torch.stack([theta, theta])))
    assert flat.convergence["converged"] and flat.convergence["epochs"] == 1
    assert len(flat.history) == 2 and flat.convergence["loss"] == 0.0
    falling = train_run(make_model(0), data, ROUND, 0, convergence=rule,
                        parameterization=BezierCurve(torch.stack([theta, permuted])))
    record = falling.convergence
    assert not record["converged"] and record["epochs"] == 31
    assert len(falling.history) == 32
    assert record["loss"] < 0.05 * record["rounds"][0]["loss"]
    assert "still falling" in record["detail"] and "at the cap of 31 epochs" in record["detail"]
    assert_stopped_by_the_rule(record, rule, 1)
    settled = train_run(make_model(0), data, ROUND, 0, convergence=rule,
                        parameterization=BezierCurve(torch.stack([theta, permuted]), l2=10.0))
    record = settled.convergence
    assert record["converged"] and record["epochs"] < 31 and record["loss"] > 0.5
    assert "less than 5%, in the last round" in record["detail"]
    assert_stopped_by_the_rule(record, rule, 1)
    # the same as the falling one with a cap of two rounds (1 + 2 epochs): stopped there
    capped = train_run(make_model(0), data, ROUND, 0,
                       convergence=dataclasses.replace(rule, max_epochs=3),
                       parameterization=BezierCurve(torch.stack([theta, permuted])))
    assert not capped.convergence["converged"] and capped.convergence["epochs"] == 3
    assert "at the cap of 3 epochs" in capped.convergence["detail"]
    assert capped.convergence["rounds"] == falling.convergence["rounds"][:3]


def test_complex_through_one_solution_stops_and_through_permutations_goes_on():
    theta, permuted = solution_and_permuted()
    data = synthetic_data()
    rule = Convergence(max_epochs=15, tolerance=0.05, floor=1e-3)
    spec = {"kind": "complex", "connectors": 1, "samples": 2}
    flat = train_run(make_model(0), data, ROUND, 0, convergence=rule,
                     parameterization=build_structure(spec, torch.stack([theta] * 3), list("abc")))
    assert flat.convergence["converged"] and flat.convergence["epochs"] == 1
    assert "at most the floor of 0.001 nats after 1 epochs" in flat.convergence["detail"]
    falling = train_run(make_model(0), data, ROUND, 0, convergence=rule,
                        parameterization=build_structure(
                            spec, torch.stack([theta, permuted, theta]), list("abc")))
    assert falling.convergence["epochs"] >= 3
    assert_stopped_by_the_rule(falling.convergence, rule, 1)
    assert falling.convergence["criterion"].startswith("complex barrier")
    assert "resolution-4 barycentric lattice" in falling.convergence["criterion"]


def test_status_json_carries_the_record(tmp_path):
    theta, permuted = solution_and_permuted()
    result = train_run(make_model(0), synthetic_data(), ROUND, 0,
                       convergence=Convergence(max_epochs=3),
                       parameterization=BezierCurve(torch.stack([theta, permuted])))
    io.write_json(status_record(result), tmp_path / "status.json")
    record = json.loads((tmp_path / "status.json").read_text())["convergence"]
    assert set(record) == RECORD_KEYS and record["max_epochs"] == 3
    assert isinstance(record["converged"], bool) and record["epochs"] in (1, 3)
    assert record["criterion"].startswith("curve barrier: the largest train loss")
    assert "17 evenly spaced t" in record["criterion"] and "5%" in record["criterion"]
    assert math.isfinite(record["loss"]) and record["max_loss"] >= record["mean_loss"]
    assert record["loss"] == pytest.approx(record["max_loss"] - record["solution_loss"])
    # ordinary training keeps its record as it was: no convergence key
    plain = train_run(make_model(0), synthetic_data(), TrainSettings(epochs=1), 0)
    assert "convergence" not in status_record(plain) and plain.convergence is None


def test_batch_members_stop_at_their_own_round():
    theta, permuted = solution_and_permuted()
    data = synthetic_data()
    rule = Convergence(max_epochs=15, tolerance=0.05, floor=0.0)
    curves = [BezierCurve(torch.stack([theta, theta])), BezierCurve(torch.stack([theta, permuted]))]
    batched = train_members([Member(make_model(0), data, ROUND, seed, curve, convergence=rule)
                             for seed, curve in enumerate(curves)])
    alone = [train_run(make_model(0), data, ROUND, seed, parameterization=curve, convergence=rule)
             for seed, curve in enumerate(curves)]
    assert batched[0].convergence["epochs"] == 1 < batched[1].convergence["epochs"]
    for b, a in zip(batched, alone):
        assert b.convergence["epochs"] == a.convergence["epochs"]
        assert b.convergence["converged"] == a.convergence["converged"]
        assert len(b.history) == len(a.history) == b.convergence["epochs"] + 1
        torch.testing.assert_close(b.trainable["final"]["bend"], a.trainable["final"]["bend"],
                                   rtol=1e-4, atol=1e-5)
    # the stopped member took its one round of steps only
    assert batched[0].steps == alone[0].steps == 8
    assert "convergence" in batch_incompatibility(
        [Member(make_model(0), data, ROUND, 0, curves[0], convergence=rule),
         Member(make_model(0), data, ROUND, 1, curves[1],
                convergence=dataclasses.replace(rule, max_epochs=7))])


def test_every_round_restarts_the_schedule_twice_as_long():
    theta, permuted = solution_and_permuted()
    settings = dataclasses.replace(ROUND, epochs=4, batch_size=64)
    result = train_run(make_model(0), synthetic_data(), settings, 0,
                       convergence=Convergence(max_epochs=12, tolerance=0.0, floor=0.0),
                       parameterization=BezierCurve(torch.stack([theta, permuted])))
    lrs = [row["lr"] for row in result.history]
    assert result.convergence["epochs"] == 12, "tolerance 0: trains to the cap"
    garipov = [0.05, 0.05, 0.05 * 0.38125, 0.0005]   # at 1/4, 1/2, 3/4 and the end of a round
    assert lrs[1:5] == pytest.approx(garipov)
    assert lrs[6:13:2] == pytest.approx(garipov)
    assert lrs[5] == lrs[7] == pytest.approx(0.05)
    with pytest.raises(ValueError, match="not the end of a round"):
        train_run(make_model(0), synthetic_data(), settings, 0,
                  convergence=Convergence(max_epochs=8))
    with pytest.raises(ValueError, match="unset steps"):
        train_run(make_model(0), synthetic_data(), dataclasses.replace(settings, steps=5), 0,
                  convergence=Convergence(max_epochs=12))


class Killed(Exception):
    """Stands for a kill right after a resume file was written."""


@pytest.mark.parametrize("kill_after", [2, 4])
def test_resume_in_a_later_round_equals_the_uninterrupted_run(tmp_path, monkeypatch, kill_after):
    """Killed right at the first round's end (after its evaluation), or in the middle of the
    second round, the resumed run ends exactly as the uninterrupted one."""
    theta, permuted = solution_and_permuted()
    data = synthetic_data()
    settings = dataclasses.replace(ROUND, epochs=2, batch_size=64, checkpoint_epochs=(0,))
    rule = Convergence(max_epochs=14, tolerance=0.0, floor=0.0)

    def members():
        return [Member(make_model(0), data, settings, seed, BezierCurve(torch.stack(ends)),
                       convergence=rule)
                for seed, ends in enumerate([(theta, theta), (theta, permuted)])]

    uninterrupted = train_members(members())
    resume, save_torch = tmp_path / "resume.pt", io.save_torch

    def save_then_kill(obj, path):
        save_torch(obj, path)
        if obj["epoch"] == kill_after:
            raise Killed

    monkeypatch.setattr(io, "save_torch", save_then_kill)
    with pytest.raises(Killed):
        train_members(members(), resume_path=resume)
    monkeypatch.undo()
    resumed = train_members(members(), resume_path=resume)
    assert uninterrupted[1].convergence["epochs"] > kill_after
    for a, b in zip(resumed, uninterrupted):
        assert states_equal(a.final_state, b.final_state)
        assert torch.equal(a.trainable["final"]["bend"], b.trainable["final"]["bend"])
        assert a.convergence == b.convergence
        assert [r["train_loss"] for r in a.history] == [r["train_loss"] for r in b.history]


def test_batch_norm_structure_is_judged_with_recomputed_statistics():
    ends = torch.stack([get_flat_params(make_model(s, "batch")) for s in (0, 1)])
    result = train_run(make_model(0, "batch"), synthetic_data(), ROUND, 0,
                       convergence=Convergence(max_epochs=3, tolerance=0.0, floor=0.0),
                       parameterization=BezierCurve(ends))
    rounds = result.convergence["rounds"]
    assert [r["epoch"] for r in rounds][:2] == [0, 1]
    assert all(math.isfinite(r["loss"]) and r["max_loss"] >= r["mean_loss"] for r in rounds)
    assert "batch-norm statistics, if any, recomputed" in result.convergence["criterion"]
