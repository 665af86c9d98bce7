"""Parameterizations and the one trainer: matrix-free projection == dense A, subspace at d = D with
A = I == full-space training, resume after SIGKILL for a subspace and a curve run (also one trained
in rounds until convergence), bad specs."""

import subprocess
import sys
import textwrap

import pytest
import torch

from lossatlas import io
from lossatlas.models import build_model
from lossatlas.parameterizations import (
    FullSpace, MatrixProjection, RandomProjection, RandomSubspace, build_parameterization,
    scale_parameters_)
from lossatlas.params import flat_params_from_state, get_flat_params, param_layout
from lossatlas.train import TrainSettings, init_model, train_run
from kill_mid_run import kill_mid_run
from test_train import synthetic_data


def make_model(seed, norm="none"):
    return init_model(lambda: build_model("mlp", (1, 40), 4, width=16, depth=1, norm=norm), seed)


@pytest.mark.parametrize("dim_full, dim, block_rows", [(50, 7, 8), (300, 40, 64), (33, 33, 5)])
def test_matrix_free_projection_equals_dense(dim_full, dim, block_rows):
    dense = RandomProjection(dim_full, dim, seed=3, materialize=True, block_rows=block_rows)
    blocked = RandomProjection(dim_full, dim, seed=3, materialize=False, block_rows=block_rows)
    assert blocked.describe()["projection"] == "blocked" and dense.describe()["projection"] == "dense"
    a = dense.matrix()
    torch.testing.assert_close(blocked.matrix(), a, rtol=0, atol=0)
    torch.testing.assert_close(a.norm(dim=0), torch.ones(dim), rtol=1e-6, atol=1e-6)
    z = torch.randn(dim, dtype=torch.float32, requires_grad=True)
    v = torch.randn(dim_full)
    out_dense, out_blocked = dense.apply(z), blocked.apply(z)
    torch.testing.assert_close(out_blocked, a @ z, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out_dense, a @ z, rtol=1e-5, atol=1e-6)
    (grad_blocked,) = torch.autograd.grad((out_blocked * v).sum(), z)
    torch.testing.assert_close(grad_blocked, a.T @ v, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(blocked.apply_transpose(v), a.T @ v, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dim_full, dim, block_rows", [(50, 7, 8), (300, 40, 64)])
def test_rows_through_the_blocked_projection_equal_the_dense_products(dim_full, dim, block_rows):
    """``apply_rows`` (a batch's members sharing one A): each row as A z, its gradient as Aᵀ v,
    the blocked A regenerated once for all rows."""
    dense = RandomProjection(dim_full, dim, seed=3, materialize=True, block_rows=block_rows)
    blocked = RandomProjection(dim_full, dim, seed=3, materialize=False, block_rows=block_rows)
    a = dense.matrix()
    z = torch.randn(3, dim, requires_grad=True)
    v = torch.randn(3, dim_full)
    for projection in (dense, blocked):
        rows = projection.apply_rows(z)
        torch.testing.assert_close(rows, z @ a.T, rtol=1e-5, atol=1e-6)
        (gradient,) = torch.autograd.grad((rows * v).sum(), z)
        torch.testing.assert_close(gradient, v @ a, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(projection.apply_transpose(v), v @ a, rtol=1e-5, atol=1e-5)


def test_projection_seeds_columns_and_orthonormal():
    a = RandomProjection(200, 10, seed=0).matrix()
    b = RandomProjection(200, 10, seed=1).matrix()
    assert not torch.allclose(a, b)
    torch.testing.assert_close(RandomProjection(200, 10, seed=0).matrix(), a, rtol=0, atol=0)
    q = RandomProjection(200, 10, seed=0, orthonormal=True).matrix()
    torch.testing.assert_close(q.T @ q, torch.eye(10), rtol=0, atol=1e-5)
    # the auto choice materializes only within the memory budget
    assert RandomProjection(1000, 100, seed=0, memory_budget_bytes=10**5).materialized is False
    with pytest.raises(ValueError, match="orthonormal columns need the dense A"):
        RandomProjection(1000, 100, seed=0, orthonormal=True, memory_budget_bytes=10**5)
    with pytest.raises(ValueError, match=r"d=0 must be in \[1, D=10\]"):
        RandomProjection(10, 0, seed=0)
    with pytest.raises(ValueError, match=r"d=11 must be in \[1, D=10\]"):
        RandomProjection(10, 11, seed=0)


def test_build_parameterization_specs():
    theta0 = torch.randn(30)
    assert isinstance(build_parameterization(None, theta0), FullSpace)
    sub = build_parameterization({"kind": "subspace", "dim": 5, "seed": 2}, theta0)
    assert isinstance(sub, RandomSubspace) and sub.describe()["dim"] == 5
    torch.testing.assert_close(sub.theta(sub.initial_tensors()), theta0)
    with pytest.raises(ValueError, match="unknown parameterization 'simplex'"):
        build_parameterization({"kind": "simplex"}, theta0)
    with pytest.raises(ValueError, match="unknown projection 'fastfood'"):
        build_parameterization({"kind": "subspace", "dim": 3, "projection": "fastfood"}, theta0)
    with pytest.raises(ValueError, match="unknown option"):
        build_parameterization({"kind": "subspace", "dim": 3, "rank": 2}, theta0)


def test_scale_parameters():
    model = make_model(0)
    theta = get_flat_params(model)
    scale_parameters_(model, 2.5)
    torch.testing.assert_close(get_flat_params(model), 2.5 * theta)
    with pytest.raises(ValueError, match="init scale"):
        scale_parameters_(model, 0.0)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_subspace_with_identity_equals_full_space(optimizer):
    data = synthetic_data()
    settings = TrainSettings(optimizer=optimizer, lr=0.05 if optimizer == "sgd" else 0.01,
                             epochs=2, batch_size=32, checkpoint_epochs=(0, 2))
    full = train_run(make_model(0), data, settings, seed=0)
    model = make_model(0)
    theta0 = get_flat_params(model)
    identity = RandomSubspace(theta0, MatrixProjection(torch.eye(theta0.numel())))
    sub = train_run(model, data, settings, seed=0, parameterization=identity)
    assert sub.parameterization["projection"] == "given matrix"
    for name in full.final_state:
        torch.testing.assert_close(sub.final_state[name], full.final_state[name], rtol=1e-4,
                                   atol=1e-5)
    final_theta = flat_params_from_state(sub.final_state, param_layout(model))
    torch.testing.assert_close(sub.trainable["final"]["z"], final_theta - theta0)
    for row_full, row_sub in zip(full.history, sub.history):
        assert row_sub["train_loss"] == pytest.approx(row_full["train_loss"], rel=1e-4)


def test_subspace_training_moves_only_in_the_subspace():
    data = synthetic_data()
    model = make_model(0)
    theta0 = get_flat_params(model)
    subspace = build_parameterization({"kind": "subspace", "dim": 20, "seed": 1,
                                       "projection": "blocked"}, theta0)
    result = train_run(model, data, TrainSettings(optimizer="adam", lr=0.05, epochs=3,
                                                  batch_size=32), seed=0, parameterization=subspace)
    z = result.trainable["final"]["z"]
    theta = flat_params_from_state(result.final_state, param_layout(model))
    torch.testing.assert_close(theta, theta0 + subspace.projection.matrix() @ z, rtol=1e-5,
                               atol=1e-5)
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert result.history[-1]["dist_from_init"] == pytest.approx(float((theta - theta0).norm()),
                                                                 rel=1e-5)


def test_subspace_batch_norm_running_statistics_follow_training():
    data = synthetic_data()
    model = make_model(0, norm="batch")
    subspace = build_parameterization({"kind": "subspace", "dim": 10}, get_flat_params(model))
    result = train_run(model, data, TrainSettings(epochs=1, batch_size=32), seed=0,
                       parameterization=subspace)
    means = [v for k, v in result.final_state.items() if k.endswith("running_mean")]
    assert means and all(m.abs().sum() > 0 for m in means)
    tracked = [v.item() for k, v in result.final_state.items() if k.endswith("num_batches_tracked")]
    assert tracked and all(count == 8 for count in tracked)


RESUME_SCRIPT = textwrap.dedent("""
    import sys
    import torch
    sys.path.insert(0, {tests!r})
    from test_parameterizations import make_model
    from test_train import synthetic_data
    from lossatlas import io
    from lossatlas.parameterizations import build_parameterization, build_structure
    from lossatlas.params import flat_params_from_state, get_flat_params, param_layout
    from lossatlas.train import Convergence, TrainSettings, train_run
    model = make_model(0)
    epochs, convergence = {epochs}, None
    if {kind!r} == "subspace":
        parameterization = build_parameterization({{"kind": "subspace", "dim": 25, "seed": 4,
                                                    "projection": "blocked"}},
                                                  get_flat_params(model))
    else:
        ends = torch.stack([get_flat_params(model), get_flat_params(make_model(1))])
        kind = {kind!r}.removesuffix("-rounds")
        if {kind!r}.endswith("-rounds"):
            # a solution and its permutation (a barrier to remove), rounds of 2, 4 and 8 epochs;
            # tolerance 0: never converged before the cap while the barrier is above 0
            from test_convergence import solution_and_permuted
            ends = torch.stack(solution_and_permuted())
            epochs, convergence = 2, Convergence(max_epochs=14, tolerance=0.0, floor=0.0)
        parameterization = build_structure({{"kind": kind, "l2": 1e-3}}, ends, ["a", "b"])
    settings = TrainSettings(optimizer="adam", lr=0.01, epochs=epochs, batch_size=8,
                             checkpoint_epochs=(0, 1, epochs))
    result = train_run(model, synthetic_data(n_train=1024), settings, seed=0,
                       parameterization=parameterization, convergence=convergence,
                       resume_path={resume!r})
    io.save_torch({{"final": result.final_state, "trainable": result.trainable,
                   "history": result.history, "convergence": result.convergence}}, {out!r})
""")


@pytest.mark.parametrize("kind, tensor", [("subspace", "z"), ("bezier", "bend"),
                                          ("bezier-rounds", "bend")])
def test_resume_after_kill_is_identical(tmp_path, kind, tensor):
    tests = str(__import__("pathlib").Path(__file__).parent)
    epochs = 12

    def script(name, resume):
        path = tmp_path / f"{name}.py"
        path.write_text(RESUME_SCRIPT.format(tests=tests, epochs=epochs, resume=str(resume),
                                             out=str(tmp_path / f"{name}.pt"), kind=kind))
        return path

    subprocess.run([sys.executable, script("straight", tmp_path / "unused.pt")], check=True)
    resume = tmp_path / "resume.pt"
    saved_epoch = kill_mid_run([sys.executable, script("killed", resume)], resume)["epoch"]
    assert 1 <= saved_epoch < epochs, "the kill must land mid-run"
    subprocess.run([sys.executable, script("killed", resume)], check=True)
    straight, resumed = io.load_torch(tmp_path / "straight.pt"), io.load_torch(tmp_path / "killed.pt")
    assert torch.equal(straight["trainable"]["final"][tensor],
                       resumed["trainable"]["final"][tensor])
    assert all(torch.equal(straight["final"][k], resumed["final"][k]) for k in straight["final"])
    assert [r["train_loss"] for r in straight["history"]] == [r["train_loss"] for r in resumed["history"]]
    assert straight["convergence"] == resumed["convergence"]
    if kind.endswith("-rounds"):
        assert len(straight["convergence"]["rounds"]) > 2, "the run must go several rounds"


def test_resume_file_of_another_run_is_not_used(tmp_path):
    data = synthetic_data()
    resume = tmp_path / "resume.pt"
    settings = TrainSettings(epochs=1, batch_size=32)
    model = make_model(0)
    sub = build_parameterization({"kind": "subspace", "dim": 10}, get_flat_params(model))
    train_run(model, data, settings, seed=0, parameterization=sub, resume_path=resume)
    model = make_model(0)
    other = build_parameterization({"kind": "subspace", "dim": 12}, get_flat_params(model))
    result = train_run(model, data, settings, seed=0, parameterization=other, resume_path=resume)
    assert result.trainable["final"]["z"].shape == (12,)


def test_members_of_one_projection_seed_share_its_matrix():
    """Subspace runs of one seed at several init scales (a batch's members) hold one A, not
    copies; another seed or dimension gets its own."""
    theta0 = torch.randn(500)
    spec = {"kind": "subspace", "dim": 20, "seed": 1}
    first = build_parameterization(spec, theta0)
    scaled = build_parameterization(spec, 2.0 * theta0)
    assert scaled.projection is first.projection
    z = {"z": torch.ones(20)}
    torch.testing.assert_close(scaled.theta(z) - 2.0 * theta0, first.theta(z) - theta0)
    assert build_parameterization({**spec, "seed": 2}, theta0).projection is not first.projection
    assert build_parameterization({**spec, "dim": 21}, theta0).projection is not first.projection
