"""Goldilocks zone: the restricted Hessian AᵀHA against the dense Hessian of a tiny float64 net,
the ratio statistics against direct numpy, radius scaling, and the table's claim rows."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch.func import hessian

from lossatlas.curvature import HessianOperator, MatrixOperator, trace_to_frobenius_ratio
from lossatlas.functional import FunctionalModel
from lossatlas.goldilocks import (
    GoldilocksSettings,
    measure_goldilocks,
    positive_fraction,
    restricted_hessian,
    trace_frobenius_ratio,
    xavier_radius,
)
from lossatlas.models import build_model
from lossatlas.parameterizations import RandomProjection, scale_parameters_
from lossatlas.plots import save_figure
from lossatlas.plots.goldilocks import (
    SHELL_CLAIM,
    SUCCESS_CLAIM,
    goldilocks_table,
    overlay_dimension,
    plot_goldilocks,
)
from lossatlas.train import init_model


def build_tiny():
    """A float64 MLP 10 → 8 → 4 (D = 124)."""
    return build_model("mlp", (10,), 4, width=8, depth=1, norm="none").double()


def tiny_data():
    g = torch.Generator().manual_seed(1)
    return torch.randn(64, 10, generator=g, dtype=torch.float64), torch.randint(0, 4, (64,),
                                                                                generator=g)


def dense_hessian(fmodel, theta, x, y):
    return hessian(lambda t: fmodel.loss(t, x, y))(theta)


def test_restricted_hessian_equals_projected_dense_hessian():
    x, y = tiny_data()
    fmodel = FunctionalModel(init_model(build_tiny, 0))
    theta = fmodel.theta0
    dense = dense_hessian(fmodel, theta, x, y)
    a = RandomProjection(fmodel.layout.dim, 6, seed=3).matrix().double()
    operator = HessianOperator(fmodel, theta, x, y)
    restricted = restricted_hessian(operator, a)
    assert restricted.shape == (6, 6) and restricted.dtype == torch.float64
    torch.testing.assert_close(restricted, a.T @ dense @ a, atol=1e-10, rtol=1e-8)
    assert torch.equal(restricted, restricted.T)
    assert operator.products == 6
    with pytest.raises(ValueError, match=r"shape \(124, d\)"):
        restricted_hessian(operator, a[:-1])


def test_ratio_statistics_against_numpy():
    m = np.array([[4.0, 1.0, 0.0], [1.0, -2.0, 0.5], [0.0, 0.5, 1.0]])
    assert trace_frobenius_ratio(torch.tensor(m)) == pytest.approx(np.trace(m)
                                                                    / np.linalg.norm(m, "fro"))
    assert trace_frobenius_ratio(torch.eye(9)) == pytest.approx(3.0)
    eigenvalues = torch.tensor(np.linalg.eigvalsh(m))
    assert positive_fraction(eigenvalues) == pytest.approx(np.mean(np.linalg.eigvalsh(m) > 0))
    assert positive_fraction(torch.tensor([-1.0, 0.0, 2.0, 3.0])) == 0.5
    with pytest.raises(ValueError, match="zero matrix"):
        trace_frobenius_ratio(torch.zeros(3, 3))
    # Rademacher probes are exact on a diagonal matrix: vᵀDv = Tr D, ‖Dv‖² = ‖D‖_F².
    diagonal = torch.diag(torch.tensor([3.0, -1.0, 0.5, 2.0], dtype=torch.float64))
    full = trace_to_frobenius_ratio(MatrixOperator(diagonal), num_samples=5)
    assert full.ratio == pytest.approx(4.5 / math.sqrt(14.25), rel=1e-12)


def test_xavier_radius_of_an_mlp():
    model = build_tiny()
    expected = 10 * 8 * 2 / (10 + 8) + 8 * 4 * 2 / (8 + 4)
    assert xavier_radius(model) == pytest.approx(math.sqrt(expected))


def test_measurement_scales_the_seeded_init_and_matches_dense_hessians():
    x, y = tiny_data()
    settings = GoldilocksSettings(radius_scales=(0.5, 1.0, 3.0), subspace_dim=5, subspaces=2,
                                  trace_samples=4, seed=7)
    measurement = measure_goldilocks(build_tiny, x, y, settings)
    arrays, attrs = measurement.arrays, measurement.attrs
    theta0 = FunctionalModel(init_model(build_tiny, 7)).theta0
    assert attrs["init_radius"] == pytest.approx(theta0.norm().item())
    torch.testing.assert_close(arrays["radius"], torch.tensor([0.5, 1.0, 3.0],
                                                              dtype=torch.float64)
                               * theta0.norm().item())
    assert attrs["dim"] == 124 and attrs["n_samples"] == 64 and attrs["seed"] == 7
    assert arrays["restricted_eigenvalues"].shape == (3, 2, 5)
    for i, scale in enumerate(settings.radius_scales):
        model = init_model(build_tiny, 7)
        scale_parameters_(model, scale)
        fmodel = FunctionalModel(model)
        torch.testing.assert_close(fmodel.theta0, scale * theta0)
        dense = dense_hessian(fmodel, fmodel.theta0, x, y)
        for s in range(2):
            a = RandomProjection(124, 5, seed=s).matrix().double()
            restricted = (a.T @ dense @ a).numpy()
            values = np.linalg.eigvalsh(restricted)
            np.testing.assert_allclose(arrays["restricted_eigenvalues"][i, s].numpy(), values,
                                       atol=1e-10)
            assert arrays["restricted_ratio"][i, s].item() == pytest.approx(
                np.trace(restricted) / np.linalg.norm(restricted, "fro"), rel=1e-8)
            assert arrays["positive_fraction"][i, s].item() == np.mean(values > 0)
        assert arrays["loss"][i].item() == pytest.approx(fmodel.loss(fmodel.theta0, x, y).item())


def measurement(peak_index=2, scales=(0.1, 0.3, 1.0, 3.0, 10.0)):
    """A synthetic measurement whose mean restricted ratio peaks at ``scales[peak_index]``."""
    count = len(scales)
    ratio = 3.0 - np.abs(np.arange(count) - peak_index)[:, None] * np.array([[0.9, 1.1]])
    arrays = {"radius_scales": np.array(scales), "radius": 8.0 * np.array(scales),
              "loss": np.full(count, 2.3), "full_ratio": ratio.mean(1) * 2,
              "full_trace": np.ones(count), "full_frobenius": np.ones(count),
              "restricted_ratio": ratio, "restricted_trace": ratio,
              "restricted_frobenius": np.ones((count, 2)),
              "positive_fraction": np.clip(ratio / 4, 0, 1), "projection_seeds": np.array([0, 1])}
    attrs = {"seed": 0, "dim": 1000, "subspace_dim": 5, "subspaces": 2, "trace_samples": 4}
    return arrays, attrs


def subspace_runs(accuracy_by_scale, dims=(10, 50, 200), status=None):
    """Subspace-training rows: test accuracy ``accuracy_by_scale[α]`` at every d, 0.9 baseline."""
    rows = []
    for scale, accuracy in accuracy_by_scale.items():
        for dim in [*dims, 1000]:
            kind = "full" if dim == 1000 else "subspace"
            run = f"subspace_a{scale:g}_{'full' if kind == 'full' else f'd{dim}'}-s0"
            rows.append({"run": run, "kind": kind, "init_scale": scale, "dim": dim,
                         "status": (status or {}).get(run, "ok"),
                         "test_acc": 0.9 if kind == "full" else accuracy})
    rows.append({"run": "claim", "claim": "other figure's claim"})
    return pd.DataFrame(rows)


def test_table_claims_hold_for_a_shell_and_matching_success():
    arrays, attrs = measurement(peak_index=2)
    runs = subspace_runs({0.25: 0.3, 0.5: 0.7, 1.0: 0.8, 2.0: 0.6, 4.0: 0.2})
    table = goldilocks_table(arrays, attrs, runs)
    claims = table[table["run"] == "claim"].set_index("claim")
    shell = claims.loc[SHELL_CLAIM]
    assert shell["verdict"] == "holds" and shell["radius_scale"] == 1.0 and shell["ratio"] == 3.0
    success = table[table["kind"] == "subspace_success"].set_index("radius_scale")
    assert success["dim"].unique().tolist() == [50]  # largest d below D/10 = 100
    assert success.loc[1.0, "success_fraction"] == pytest.approx(0.8 / 0.9)
    # log-linear interpolation of the mean ratio (3 at r = 1, 2 at r = 0.3 and 3).
    expected = 3.0 - np.log(2.0) / np.log(3.0)
    assert success.loc[2.0, "ratio"] == pytest.approx(expected)
    link = claims.loc[SUCCESS_CLAIM]
    assert link["verdict"] == "holds" and link["value"] == pytest.approx(1.0)
    assert len(table[table["kind"] == "restricted"]) == 10
    figure = plot_goldilocks(table, init_radius=8.0, xavier_radius=12.0)
    assert len(figure.axes) == 4
    figure.clf()


def test_table_claims_fail_or_are_inconclusive_with_reasons(tmp_path):
    arrays, attrs = measurement(peak_index=4)
    runs = subspace_runs({0.25: 0.8, 0.5: 0.6, 1.0: 0.5, 20.0: 0.1})
    table = goldilocks_table(arrays, attrs, runs, overlay_dim=10)
    claims = table[table["run"] == "claim"].set_index("claim")
    assert claims.loc[SHELL_CLAIM, "verdict"] == "does not hold"
    assert claims.loc[SHELL_CLAIM, "radius_scale"] == 10.0
    link = claims.loc[SUCCESS_CLAIM]
    assert link["verdict"] == "does not hold" and link["value"] == pytest.approx(-1.0)
    assert np.isnan(table.loc[(table["kind"] == "subspace_success")
                              & (table["radius_scale"] == 20.0), "ratio"].iloc[0])
    few = goldilocks_table(arrays, attrs, subspace_runs({0.5: 0.5, 1.0: 0.8}))
    reason = few.loc[few["claim"] == SUCCESS_CLAIM, "reason"].iloc[0]
    assert few.loc[few["claim"] == SUCCESS_CLAIM, "verdict"].iloc[0] == "inconclusive"
    assert "only 2 init scale(s)" in reason
    skipped = goldilocks_table(arrays, attrs, subspace_runs(
        {0.25: 0.3, 0.5: 0.5, 1.0: 0.8}, status={"subspace_a0.5_d50-s0": "skipped: "
                                                 "subspace_a0.5_d50-s0 diverged"}))
    row = skipped[skipped["claim"] == SUCCESS_CLAIM].iloc[0]
    assert row["verdict"] == "inconclusive" and row["reason"].endswith("diverged")
    save_figure(plot_goldilocks(skipped, 8.0, 12.0), tmp_path / "g.pdf", tmp_path / "g.png")
    assert (tmp_path / "g.png").stat().st_size > 0


def test_overlay_dimension_choice_and_errors():
    runs = subspace_runs({1.0: 0.5}, dims=(10, 50, 200))
    runs = runs[runs["kind"].notna()]
    assert overlay_dimension(runs, 1000, None) == 50
    assert overlay_dimension(runs, 1000, 200) == 200
    with pytest.raises(ValueError, match="figures.goldilocks.overlay_dim=30"):
        overlay_dimension(runs, 1000, 30)
    with pytest.raises(ValueError, match="set figures.goldilocks.overlay_dim"):
        overlay_dimension(runs, 50, None)
