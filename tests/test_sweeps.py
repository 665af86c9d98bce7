"""Sweep measurements: linear CKA against its Gram-matrix definition and its invariances, the
phase of every cell of a hand-made grid, mixup inputs, and λ_max / Tr H against the dense Hessian."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch

from lossatlas.functional import FunctionalModel
from lossatlas.models import build_model
from lossatlas.plots.sweeps import hyperparams_table, plot_taxonomy_phases, taxonomy_phase_table
from lossatlas.sweeps import mixup_inputs, sharpness
from lossatlas.taxonomy import (PhaseThresholds, linear_cka, mean_pairwise_cka,
                                mean_pairwise_distance, phase)

THRESHOLDS = PhaseThresholds(mc_tolerance=0.02, sharpness_threshold=10.0, train_loss_threshold=0.1,
                             cka_threshold=0.9)


def gram_cka(a, b):
    """CKA from its definition: HSIC of the centred linear Gram matrices."""
    n = a.shape[0]
    centring = np.eye(n) - np.ones((n, n)) / n
    k, l = centring @ a @ a.T @ centring, centring @ b @ b.T @ centring
    return np.sum(k * l) / np.sqrt(np.sum(k * k) * np.sum(l * l))


def test_linear_cka_equals_the_gram_matrix_definition():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(50, 7)), rng.normal(size=(50, 4))
    b[:, 0] += a[:, 0]
    assert linear_cka(a, b) == pytest.approx(gram_cka(a, b), rel=1e-12)
    assert linear_cka(a, a) == pytest.approx(1.0, rel=1e-12)


def test_linear_cka_invariances():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(40, 6)), rng.normal(size=(40, 6))
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    reference = linear_cka(a, b)
    assert linear_cka(a @ q, b) == pytest.approx(reference, rel=1e-10)
    assert linear_cka(a, 3.7 * b) == pytest.approx(reference, rel=1e-10)
    assert linear_cka(a + 5.0, b) == pytest.approx(reference, rel=1e-10)
    assert linear_cka(a, b[:, ::-1] * rng.normal(size=6)) != pytest.approx(reference, rel=1e-3)


def test_mean_pairwise_cka_and_distance():
    rng = np.random.default_rng(2)
    outputs = rng.normal(size=(3, 30, 5))
    pairs = [linear_cka(outputs[i], outputs[j]) for i in range(3) for j in range(3) if i != j]
    assert mean_pairwise_cka(outputs) == pytest.approx(np.mean(pairs), rel=1e-12)
    points = np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 8.0]])
    assert mean_pairwise_distance(points) == pytest.approx((5.0 + 8.0 + 5.0) / 3)
    with pytest.raises(ValueError, match="two seeds"):
        mean_pairwise_cka(outputs[:1])


@pytest.mark.parametrize("mc, lambda_max, train_loss, cka, expected", [
    (-0.10, 50.0, 0.5, 0.5, ("poor", "sharp", "under-fit", "low", "I")),
    (-0.10, 2.0, 0.5, 0.95, ("poor", "flat", "under-fit", "high", "II")),
    (0.08, 2.0, 0.5, 0.5, ("mc>0", "flat", "under-fit", "low", "III")),
    (0.0, 20.0, 0.01, 0.95, ("well", "sharp", "fit", "high", "III")),
    (0.01, 2.0, 0.01, 0.5, ("well", "flat", "fit", "low", "IV-A")),
    (-0.02, 2.0, 0.01, 0.95, ("well", "flat", "fit", "high", "IV-B")),
])
def test_phase_of_each_cell(mc, lambda_max, train_loss, cka, expected):
    reading = phase(mc, lambda_max, train_loss, cka, THRESHOLDS)
    assert tuple(reading[k] for k in ("connectivity", "sharpness", "fit", "similarity",
                                      "phase")) == expected


def test_phase_map_of_a_hand_made_grid():
    """Width 4 has barriers, width 64 at lr 0.1 is the well-connected, flat, high-CKA best cell; one
    diverged cell stays in the table with its reason and no phase."""
    cells = pd.DataFrame([
        dict(load=4, temperature=0.01, mc_error=-0.2, lambda_max=30.0, train_loss=0.8, cka=0.5,
             test_error=0.6, status="ok"),
        dict(load=4, temperature=0.1, mc_error=-0.1, lambda_max=5.0, train_loss=0.7, cka=0.6,
             test_error=0.55, status="ok"),
        dict(load=64, temperature=0.01, mc_error=0.0, lambda_max=40.0, train_loss=0.01, cka=0.92,
             test_error=0.4, status="ok"),
        dict(load=64, temperature=0.1, mc_error=0.005, lambda_max=3.0, train_loss=0.01, cka=0.95,
             test_error=0.3, status="ok"),
        dict(load=64, temperature=1.0, mc_error=np.nan, lambda_max=np.nan, train_loss=np.nan,
             cka=np.nan, test_error=np.nan, status="skipped: grid_w64_lr1-s0 diverged"),
    ]).assign(run="cell", group=lambda t: [f"c{i}" for i in range(len(t))], load_knob="width",
              temperature_knob="lr")
    table = taxonomy_phase_table(cells, THRESHOLDS)
    phases = table[table["run"] == "cell"].set_index("group")["phase"]
    assert phases.tolist()[:4] == ["I", "II", "III", "IV-B"] and pd.isna(phases["c4"])
    claims = table[table["run"] == "claim"].set_index("statistic")
    assert claims.loc["best cell in IV-B (1 yes, 0 no)", "verdict"] == "holds"
    smallest = claims.loc["mean mc (train error) at width = 4"]
    assert smallest["value"] == pytest.approx(-0.15) and smallest["verdict"] == "holds"
    assert (table.loc[table["run"] == "cell", "mc_tolerance"] == 0.02).all()
    figure = plot_taxonomy_phases(table, THRESHOLDS)
    legend = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    assert legend == [
        "I: poorly connected (mc < −tolerance) and sharp — 1 cell(s)",
        "II: poorly connected and flat — 1 cell(s)",
        "III: not poorly connected, but mc > tolerance or sharp — 1 cell(s)",
        "IV-A: well connected (|mc| ≤ tolerance), flat, low CKA — no cell",
        "IV-B: well connected, flat, high CKA (where Yang et al. find the best test accuracy) "
        "— 1 cell(s)"]
    plt.close(figure)


def test_mixup_inputs_are_seeded_convex_combinations():
    x = torch.arange(24.0).reshape(6, 1, 4)
    mixed = mixup_inputs(x, 10, alpha=16.0, seed=3)
    rng = np.random.default_rng(3)
    i, j = rng.integers(0, 6, 10), rng.integers(0, 6, 10)
    lam = rng.beta(16.0, 16.0, 10)
    expected = lam[:, None, None] * x.numpy()[i] + (1 - lam[:, None, None]) * x.numpy()[j]
    np.testing.assert_allclose(mixed.numpy(), expected, rtol=1e-6)
    assert torch.equal(mixed, mixup_inputs(x, 10, alpha=16.0, seed=3))
    assert 0.2 < lam.min() and lam.max() < 0.8


def test_sharpness_against_the_dense_hessian():
    torch.manual_seed(0)
    model = build_model("mlp", (1, 6), 3, width=5, depth=1).double()
    fmodel = FunctionalModel(model)
    theta = fmodel.theta0
    x, y = torch.randn(40, 1, 6, dtype=torch.float64), torch.randint(0, 3, (40,))
    dense = torch.autograd.functional.hessian(lambda t: fmodel.loss(t, x, y), theta)
    eigenvalues = torch.linalg.eigvalsh(dense)
    samples = 300
    measured = sharpness(fmodel, theta, x, y, n_samples=40, lanczos_iterations=theta.numel(),
                         trace_samples=samples)
    assert measured.lambda_max == pytest.approx(eigenvalues[-1].item(), rel=1e-6)
    # Hutchinson with Rademacher vectors: variance 2(‖H‖_F² − Σ H_ii²) per sample
    std = np.sqrt(2 * ((dense ** 2).sum() - (dense.diagonal() ** 2).sum()).item() / samples)
    assert abs(measured.trace - dense.trace().item()) < 4 * std
    assert measured.n_samples == 40 and measured.products >= samples


def test_hyperparams_claims_blame_only_their_own_sweeps_skipped_runs():
    """A diverged run of the lr sweep makes the lr rows and the all-runs row inconclusive, naming
    it; the width sweep's row names no skipped run."""
    rows = []
    for sweep, knob, values in (("lr", "lr", [0.01, 0.1, 1.0]), ("width", "width", [8, 16, 32])):
        for index, value in enumerate(values):
            group = f"{sweep}_{knob}{value:g}"
            diverged = sweep == "lr" and value == 1.0
            rows.append({"run": f"{group}-s0", "group": group, "epoch": 2,
                         "status": "skipped: lr_lr1-s0 diverged" if diverged else "ok",
                         "lambda_max": float(index + 1), "trace": float(index + 2),
                         "param_norm": float(3 - index), "train_loss": 0.1, "test_error": 0.2})
    sweeps = {name: {"knob": knob, "values": {f"{name}_{knob}{v:g}": v for v in values}}
              for name, knob, values in (("lr", "lr", [0.01, 0.1, 1.0]),
                                         ("width", "width", [8, 16, 32]))}
    claims = hyperparams_table(pd.DataFrame(rows), sweeps).query("run == 'claim'")
    reasons = dict(zip(claims["claim"].str.split(" ").str[0], claims["reason"]))
    assert "skipped" not in reasons["width"]
    assert reasons["larger"].endswith("1 run(s) skipped: lr_lr1-s0")
    assert claims["reason"].iloc[-1].endswith("1 run(s) skipped: lr_lr1-s0")
