"""Claim rows: the row format, writing and gathering (a skipped run is inconclusive), and each
figure's statistic on hand-made inputs with known answers."""

import numpy as np
import pandas as pd
import pytest
import torch

from lossatlas.claims import (
    CLAIM_COLUMNS,
    Regime,
    apply_regime,
    taxonomy_regime,
    claim_row,
    claim_rows,
    claims_html,
    claims_markdown,
    gather_claims,
    glossary,
    reader_claims,
    reader_notation,
    runs_summary,
    value_text,
    write_claims,
)
from lossatlas.figure_claims import (
    dataset_claims,
    lb_sb_claims,
    mli_claims,
    sgd_walk_claim,
    surface_width_claim,
    trajectory_pca_claim,
)
from lossatlas.landscape import eigenvector_plane, trajectory_pca
from lossatlas.stats import basin_width, end_rise


def test_claim_row_verdicts_and_inconclusive_needs_a_reason():
    row = claim_row("W", "fig", "c", "s", 2.0, "> 1", True, runs=["a-s0", "b-s0"])
    assert set(CLAIM_COLUMNS) - {"scale", "config"} <= set(row) and row["run"] == "claim"
    assert (row["verdict"], row["runs"]) == ("holds", "a-s0 b-s0")
    fails = claim_row("W", "fig", "c", "s", 0.5, "> 1", False)
    assert (fails["verdict"], fails["reason"]) == ("does not hold", "0.5 is not > 1")
    assert claim_row("W", "fig", "c", "s", -9.0, "within ±2", False)["reason"] == \
        "−9 is not within ±2"
    unsure = claim_row("W", "fig", "c", "s", float("nan"), "> 1", True, "skipped: a-s0 diverged")
    assert unsure["verdict"] == "inconclusive" and np.isnan(unsure["value"])
    with pytest.raises(ValueError, match="needs a reason"):
        claim_row("W", "fig", "c", "s", None, "> 1", None)


def _status(train_loss, train_acc, **extra):
    return {"status": "ok", "train_loss": train_loss, "train_acc": train_acc, **extra}


def test_a_claim_on_an_under_fit_solution_is_inconclusive_with_its_reason():
    fails = claim_row("W", "fig", "c", "s", 0.5, "> 1", False, runs=["a-s0", "b-s0"])
    unfit = Regime({"a-s0": _status(0.4, 0.88), "b-s0": _status(0.001, 1.0)}, max_train_error=0.01)
    row = apply_regime(fails, unfit)
    assert row["verdict"] == "inconclusive" and row["value"] == 0.5
    assert row["reason"] == ("solutions not fit: train error of a-s0 up to 12% > 1% "
                             "(the value alone would not hold: 0.5 is not > 1)")
    assert row["regime"] == ("solutions: train error ≤ 12%, train loss ≤ 0.4 nats "
                             "(worst of 2 runs: a-s0)")
    fit = Regime({"a-s0": _status(0.004, 0.995), "b-s0": _status(0.001, 1.0)}, max_train_error=0.01)
    kept = apply_regime(fails, fit)
    assert (kept["verdict"], kept["reason"]) == ("does not hold", "0.5 is not > 1")
    holds = apply_regime(claim_row("W", "fig", "c", "s", 2.0, "> 1", True, runs=["a-s0"]), unfit)
    assert (holds["verdict"], holds["reason"]) == (
        "inconclusive", "solutions not fit: train error of a-s0 up to 12% > 1% "
                        "(the value alone would hold)")
    # only the row's own runs count; without a precondition the fit is reported, not required
    other = apply_regime(claim_row("W", "fig", "c", "s", 2.0, "> 1", True, runs=["b-s0"]), unfit)
    assert other["verdict"] == "holds" and other["regime"].startswith("solutions: train error ≤ 0%")
    along = apply_regime(fails, Regime(unfit.solutions, note="along training"))
    assert along["verdict"] == "does not hold"
    assert along["regime"].startswith("along training; solutions: train error ≤ 12%")
    assert along["regime"].endswith("(not a precondition here)")


def test_a_claim_on_an_unconverged_structure_is_inconclusive():
    row = claim_row("W", "fig", "c", "s", 0.53, "< 0.1", False, runs=["a-s0"])
    converged = {"converged": True, "epochs": 120, "detail": "loss fell 1% in the last round"}
    still = {"converged": False, "epochs": 400, "detail": "max loss still falling 12% per round"}
    regime = Regime({"a-s0": _status(0.001, 1.0)}, 0.01,
                    {"complex": _status(0.2, 0.95, convergence=still),
                     "curve": _status(0.01, 1.0, convergence=converged)})
    gated = apply_regime(row, regime)
    assert gated["verdict"] == "inconclusive"
    assert gated["reason"].startswith(
        "complex not converged: max loss still falling 12% per round at epoch 400")
    assert gated["regime"].endswith("structures: 1 of 2 converged (120–400 epochs)")
    done = Regime(regime.solutions, 0.01, {"curve": _status(0.01, 1.0, convergence=converged)})
    assert apply_regime(row, done)["verdict"] == "does not hold"
    # a claim that a low-loss structure exists: an unconverged one is still a witness of holds
    witness = Regime(regime.solutions, 0.01, regime.structures, structures_witness=True)
    assert apply_regime(row, witness)["verdict"] == "inconclusive"
    holds = claim_row("W", "fig", "c", "s", 0.05, "< 0.1", True, runs=["a-s0"])
    assert apply_regime(holds, witness)["verdict"] == "holds"
    assert apply_regime(holds, regime)["verdict"] == "inconclusive"
    unknown = Regime(regime.solutions, 0.01, {"curve": _status(0.01, 1.0)})
    assert "convergence not recorded for curve" in apply_regime(row, unknown)["reason"]


def test_taxonomy_claims_need_a_load_axis_across_interpolation_and_converged_curves():
    loads = {"w8-s0": 8, "w8-s1": 8, "w64-s0": 64, "w64-s1": 64}
    statuses = {"w8-s0": _status(1.2, 0.5), "w8-s1": _status(1.1, 0.55),
                "w64-s0": _status(0.3, 0.9), "w64-s1": _status(0.002, 1.0)}
    row = claim_row("Yang", "taxonomy_phases", "c", "s", 0.0, "= 1", False)
    crossing = taxonomy_regime(Regime(statuses), loads, 0.01)
    kept = apply_regime(row, crossing)
    assert kept["verdict"] == "does not hold"
    assert kept["regime"].startswith("load axis: 64 fit (train error ≤ 1% in some run), 8 do not")
    one_side = taxonomy_regime(Regime({**statuses, "w64-s1": _status(0.3, 0.9)}), loads, 0.01)
    gated = apply_regime(row, one_side)
    assert gated["verdict"] == "inconclusive" and gated["reason"].startswith(
        "the load axis does not cross the interpolation threshold (no load fits)")
    cells = pd.DataFrame({"curve_converged": [True, False], "curve_epochs": [40, 200],
                          "curve_convergence": ["fell 1%", "still falling 9% per round"]})
    unconverged = apply_regime(row, taxonomy_regime(Regime(statuses), loads, 0.01, cells))
    assert unconverged["verdict"] == "inconclusive"
    assert unconverged["reason"].startswith(
        "curves of 1 cells not converged (e.g. still falling 9% per round)")
    assert "curves: 1 of 2 cells converged (≤ 200 epochs)" in unconverged["regime"]


def test_write_and_gather_fill_runs_and_config(tmp_path):
    table = pd.DataFrame([{"run": "sb-s0", "loss": 0.1},
                          claim_row("W", "one", "c1", "s", 1.23456789, "> 1", True),
                          claim_row("W", "one", "c2", "s", 0.5, "> 1", False, runs=["x-s0"])])
    write_claims(table, tmp_path / "one.csv", runs=["sb-s0", "lb-s0"])
    skipped = pd.DataFrame([claim_row("V", "two", "c3", "s", None, "≥ 0.5", None,
                                      "skipped: lb-s0 diverged", ["lb-s0"])])
    write_claims(skipped, tmp_path / "two.csv")
    gathered = gather_claims({"mlp width=8": [tmp_path / "one.csv", tmp_path / "two.csv"]},
                             "smoke")
    assert list(gathered.columns) == list(CLAIM_COLUMNS)
    assert gathered["runs"].tolist() == ["sb-s0 lb-s0", "x-s0", "lb-s0"]
    assert gathered["verdict"].tolist() == ["holds", "does not hold", "inconclusive"]
    assert gathered["value"].iloc[0] == pytest.approx(1.235)
    assert gathered["reason"].tolist() == ["", "0.5 is not > 1", "skipped: lb-s0 diverged"]
    assert (gathered["config"] == "smoke").all() and (gathered["scale"] == "mlp width=8").all()
    # a claim measured at a second scale is one more check of the same claim, labelled by scale
    wider = gather_claims({"mlp width=8": [tmp_path / "one.csv"],
                           "mlp width=16": [tmp_path / "one.csv"]}, "smoke")
    checks = reader_claims(wider)[1]["checks"]
    assert [check["label"] for check in checks] == ["mlp width=8", "mlp width=16"]
    markdown = claims_markdown(gathered)
    assert "3 claims checked 3 times (once per run or run set): 1 holds, 1 does not hold, " \
           "1 inconclusive." in markdown
    assert "**inconclusive (skipped: lb-s0 diverged)**" in markdown
    page = claims_html(gathered)
    assert page.count("<tr>") == 4 and "#ffcdd2" in page and "#c8e6c9" in page
    assert '<meta charset="utf-8">' in page
    assert "<title>Claims checked (config smoke)</title>" in page
    caption = (tmp_path / "one.html").read_text()
    assert caption.count("<li>") == 2 and "#ffcdd2" in caption and "needs &gt; 1" in caption
    with pytest.raises(ValueError, match="no claim row"):
        write_claims(table.iloc[:1], tmp_path / "none.csv")


def test_claim_texts_use_one_notation():
    assert reader_notation("rho(|theta|, lambda_max) >= 0.5 -> x <= -2") == \
        "ρ(‖θ‖, λ_max) ≥ 0.5 → x ≤ −2"
    assert reader_notation("Tr/||A^T H A||_F; L - max; > delta = 0.1; 1e-05; lr0.05-s1") == \
        "Tr/‖AᵀHA‖_F; L − max; > δ = 0.1; 1e-05; lr0.05-s1"
    row = claim_rows(pd.DataFrame([claim_row("W", "f", "larger lr -> lower lambda_max",
                                             "rho(lr, x)", -1.0, "< 0", True)])).iloc[0]
    assert (row["claim"], row["statistic"]) == ("larger lr → lower λ_max", "ρ(lr, x)")


def test_values_print_integers_as_integers():
    assert [value_text(v) for v in (-9.0, 2.0, 0.123456, -0.5, float("nan"))] == \
        ["−9", "2", "0.1235", "−0.5", "–"]


def test_runs_are_listed_up_to_four_then_counted_by_family():
    assert runs_summary(["sb-s0", "lb-s0"]) == "sb-s0, lb-s0"
    taxonomy = [f"taxonomy_w{w}_lr{lr}-s{s}" for w in (8, 16) for lr in (0.1, 0.2) for s in (0, 1)]
    assert runs_summary([*taxonomy, "wedge-s0", "wedge-s1", "sb-s0"]) == \
        "taxonomy_*: 8 runs, wedge-s*: 2 runs, sb-s0"


def test_checks_of_one_claim_on_several_runs_form_one_row():
    rows = [claim_row("Sagun", "hessian_spectrum", "outliers ≈ C", "outliers − C (C = 10)",
                      value, "within ±2", abs(value) <= 2, runs=[run])
            for run, value in (("lb-s0", -9.0), ("sb-s0", -1.0))]
    rows.append(claim_row("Yang", "taxonomy_phases", "best cell in phase IV-B", "s", 0.0, "= 1",
                          False, "the best cell is in phase II"))
    table = pd.DataFrame(rows).assign(config="x")
    claims = reader_claims(table)
    assert [len(claim["checks"]) for claim in claims] == [2, 1]
    outliers = claims[0]
    assert [(c["label"], c["value"], c["verdict"]) for c in outliers["checks"]] == [
        ("lb-s0", "−9", "does not hold"), ("sb-s0", "−1", "holds")]
    assert outliers["runs"] == "lb-s0, sb-s0"
    markdown = claims_markdown(table)
    assert markdown.count("| hessian_spectrum |") == 1
    assert "lb-s0: −9<br>sb-s0: −1" in markdown and "| within ±2 |" in markdown
    assert "lb-s0: **does not hold (−9 is not within ±2)**<br>sb-s0: **holds**" in markdown
    assert set(glossary(table)) == {"C", "phase II", "phase IV-B"}
    assert "- **phase IV-B**: well connected, flat, high CKA" in markdown
    assert claims_html(table).count("<tr>") == 3


def test_basin_width_of_a_surface_with_known_width():
    xs, ys = np.linspace(-1, 1, 41), np.linspace(-1, 1, 21)
    surface = 1.0 + 2 * np.abs(xs)[None, :] + 4 * np.abs(ys)[:, None]
    width = basin_width(xs, ys, surface, delta=0.5)
    assert width.widths == pytest.approx([0.25, 0.25, 0.125, 0.125])
    assert not width.censored.any() and width.mean == pytest.approx(0.1875)
    flat_in_y = 1.0 + 2 * np.abs(xs)[None, :] + 0 * ys[:, None]
    censored = basin_width(xs, ys, flat_in_y, delta=0.5)
    assert censored.censored.tolist() == [False, False, True, True]
    assert censored.widths[2:] == pytest.approx([1.0, 1.0])


def surfaces_with_slopes(slopes):
    xs = np.linspace(-1, 1, 21)
    return {run: {"xcoordinates": xs, "ycoordinates": xs,
                  "train_loss": slope * (np.abs(xs)[:, None] + np.abs(xs)[None, :])}
            for run, slope in slopes.items()}


def test_surface_width_claim_sb_wider_skipped_and_censored():
    row = surface_width_claim(surfaces_with_slopes({"sb-s0": 1.0, "lb-s0": 2.0}), "sb-s0",
                              "lb-s0", 0.5, "random")
    assert row["value"] == pytest.approx(2.0) and row["verdict"] == "holds"
    wider_lb = surface_width_claim(surfaces_with_slopes({"sb-s0": 2.0, "lb-s0": 1.0}), "sb-s0",
                                   "lb-s0", 0.5, "random")
    assert wider_lb["verdict"] == "does not hold"
    skipped = surface_width_claim(surfaces_with_slopes({"sb-s0": 1.0}), "sb-s0", "lb-s0", 0.5,
                                  "random")
    assert skipped["verdict"] == "inconclusive" and "lb-s0" in skipped["reason"]
    censored = surface_width_claim(surfaces_with_slopes({"sb-s0": 1.0, "lb-s0": 0.1}), "sb-s0",
                                   "lb-s0", 0.5, "random")
    assert censored["verdict"] == "inconclusive" and "grid edge" in censored["reason"]


def test_trajectory_pca_claim_on_a_path_with_known_variance():
    # centred offsets with orthogonal columns of squared norms 4·4, 1·4, 1·4: top-2 share 5/6
    pattern = torch.tensor([[1.0, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]])
    path = torch.cat([pattern * torch.tensor([2.0, 1.0, 1.0]), torch.zeros(4, 5)], 1) + 3.0
    pca = trajectory_pca(path)
    attrs = {"run": "sb-s0", "status": "ok",
             "explained_variance_ratio": str([float(v) for v in pca.explained_variance_ratio])}
    row = trajectory_pca_claim(attrs, min_fraction=0.8)
    assert row["value"] == pytest.approx(5 / 6) and row["verdict"] == "holds"
    assert trajectory_pca_claim(attrs, min_fraction=0.9)["verdict"] == "does not hold"
    skipped = trajectory_pca_claim({"run": "sb-s0", "status": "skipped: sb-s0 diverged"}, 0.5)
    assert skipped["verdict"] == "inconclusive"


def walk_table(profiles, status="ok"):
    rows = [{"segment": s, "t": t, "loss": loss, "status": status,
             "segment_min_interior": 0 < int(np.argmin(profile)) < len(profile) - 1}
            for s, profile in enumerate(profiles) for t, loss in enumerate(profile)]
    return pd.DataFrame(rows)


def test_sgd_walk_claim_counts_profiles_with_an_interior_minimum():
    walk = walk_table([[1.0, 0.5, 0.8], [1.0, 0.9, 0.7], [0.6, 0.4, 0.6], [0.6, 0.3, 0.2]])
    row = sgd_walk_claim(walk, "sb-s0", min_fraction=0.5)
    assert row["value"] == pytest.approx(0.5) and row["verdict"] == "holds"
    assert sgd_walk_claim(walk, "sb-s0", min_fraction=0.6)["verdict"] == "does not hold"
    skipped = sgd_walk_claim(pd.DataFrame([{"run": "sb-s0", "status": "skipped: sb-s0 diverged"}]),
                             "sb-s0", 0.5)
    assert skipped["verdict"] == "inconclusive"


def test_end_rise_and_lb_sb_claims_on_a_known_line():
    alphas = np.linspace(-1, 2, 31)
    assert end_rise(alphas, alphas ** 2, 0.0, -0.5) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="must lie in"):
        end_rise(alphas, alphas ** 2, 1.0, 1.5)
    # train loss 4α² left of LB, (α − 1)² right of SB; test accuracy 0.6 at LB, 0.7 at SB
    train = np.where(alphas < 0, 4 * alphas ** 2, np.where(alphas > 1, (alphas - 1) ** 2, 0.0))
    accuracy = 0.6 + 0.1 * np.clip(alphas, 0, 1)
    table = pd.concat([pd.DataFrame({"alpha": alphas, "split": split, "loss": train,
                                     "accuracy": accuracy, "line": "lb_to_sb", "status": "ok",
                                     "start_run": "lb-s0", "end_run": "sb-s0", "n_test": 1000})
                       for split in ("train", "test")])
    sharp, better = lb_sb_claims(table, rise_alpha=0.5)
    assert sharp["value"] == pytest.approx(4.0) and sharp["verdict"] == "holds"
    assert better["value"] == pytest.approx(0.1) and better["verdict"] == "holds"
    assert sharp["runs"] == "lb-s0 sb-s0"
    # two seeds: gaps 0.1 and 0.0 average 0.05; 2 SE = 2 sqrt(0.24 + 0.21 + 2 * 0.24) / 1000 / 2
    second = table.assign(start_run="lb-s1", end_run="sb-s1", accuracy=0.6)
    _, mean = lb_sb_claims(pd.concat([table, second]), rise_alpha=0.5)
    noise = 2 * np.sqrt((0.24 + 0.21 + 0.24 + 0.24) / 1000) / 2
    assert mean["value"] == pytest.approx(0.05) and mean["verdict"] == "holds"
    assert mean["statistic"].endswith(f"over 2 seed pair(s)); test-set noise ±{noise:.2g} "
                                      "(2 standard errors)") and noise < 0.05
    _, noisy = lb_sb_claims(table.assign(n_test=10), rise_alpha=0.5)
    assert noisy["verdict"] == "inconclusive" and "within the test-set noise" in noisy["reason"]
    skipped = pd.DataFrame([{"line": "lb_to_sb", "status": "skipped: lb-s0 diverged",
                             "start_run": "lb-s0", "end_run": "sb-s0"}])
    assert [r["verdict"] for r in lb_sb_claims(skipped, 0.5)] == ["inconclusive"] * 2


def test_mli_claims_on_a_hand_made_sweep():
    runs = [("sgd", "none", 0.0, 1.0), ("sgd", "none", 0.0005, 2.0), ("sgd", "none", 0.1, 3.0),
            ("adam", "none", 0.2, 5.0), ("sgd", "batch", 0.3, 6.0)]
    metrics = pd.DataFrame([{"run": f"r{i}-s0", "optimizer": opt, "norm": norm, "delta": delta,
                             "monotonic": delta <= 0.001, "distance": distance, "status": "ok"}
                            for i, (opt, norm, delta, distance) in enumerate(runs)])
    rows = {row["claim"]: row for row in mli_claims(metrics, min_monotonic_fraction=0.5)}
    values = [row["value"] for row in rows.values()]
    assert values == pytest.approx([2 / 3, 1.0 - 2 / 4, 1.0 - 2 / 4, 1.0])
    assert all(row["verdict"] == "holds" for row in rows.values())
    skipped = metrics.iloc[:3].assign(status="skipped: r diverged")
    assert {row["verdict"] for row in mli_claims(skipped, 0.5)} == {"inconclusive"}


def test_dataset_claims_against_published_accuracies():
    rows = dataset_claims("mnist1d", {"mlp": ("sb-s0", {"status": "ok", "test_acc": 0.6}),
                                      "cnn1d": ("cnn1d-s0", {"status": "ok", "test_acc": 0.7})},
                          tolerance=0.1)
    assert [(r["value"], r["verdict"]) for r in rows] == [(0.6, "holds"), (0.7, "does not hold")]
    diverged = dataset_claims("mnist1d", {"mlp": ("sb-s0", {"status": "diverged"})}, 0.1)
    assert diverged[0]["verdict"] == "inconclusive"
    unknown = dataset_claims("cifar10", {"cnn2d": ("sb-s0", {"status": "ok", "test_acc": 0.9})},
                             0.1)
    assert unknown[0]["verdict"] == "inconclusive" and "no published" in unknown[0]["reason"]
    resnet = dataset_claims("cifar10", {"resnet20": ("sb-s0", {"status": "ok", "test_acc": 0.8})},
                            0.1)
    assert (resnet[0]["work"], resnet[0]["verdict"]) == ("He et al. 2016 (ResNet-20, CIFAR-10)",
                                                         "does not hold")
    assert "published 0.9125" in resnet[0]["threshold"]


def test_eigenvector_plane_spans_the_quadratic_width_of_each_direction():
    vectors = torch.eye(4)[:3]
    plane = eigenvector_plane([8.0, 2.0, 1.0], vectors, unit=2.0, delta=0.25, extent=3.0, xnum=5,
                              ynum=3)
    assert plane.directions.tolist() == (2 * torch.eye(4)[:2]).tolist()
    # √(2 · 0.25 / λ) = 0.25 and 0.5 parameter units, i.e. 0.125 and 0.25 in units of 2
    assert plane.xs == pytest.approx(np.linspace(-0.375, 0.375, 5))
    assert plane.ys == pytest.approx([-0.75, 0.0, 0.75])
    with pytest.raises(ValueError, match="positive"):
        eigenvector_plane([1.0, -1.0], vectors, 1.0, 0.1, 3.0, 5, 5)
