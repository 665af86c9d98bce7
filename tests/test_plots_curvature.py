"""Curvature figures and tables: outlier counts, claim rows, stability threshold, skipped runs."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from lossatlas.plots import save_figure
from lossatlas.plots.curvature import (
    EDGE_CLAIM,
    LAMBDA_MAX_CLAIM,
    OUTLIER_CLAIM,
    OVERLAP_CLAIM,
    TRANSIENT_CLAIM,
    curvature_along_training_table,
    hessian_spectrum_table,
    plot_curvature_along_training,
    plot_hessian_spectrum,
    stability_threshold,
    transient_curvature_claim,
)


def spectrum(run, batch_size, outliers, scale, status="ok"):
    """A measurement with ``outliers`` eigenvalues in ``scale`` × [10, 20] above a bulk below 1."""
    attrs = {"run": run, "group": run.rsplit("-s", 1)[0], "status": status, "batch_size": batch_size}
    if status != "ok":
        return {}, attrs
    top = np.concatenate([scale * np.linspace(20.0, 10.0, outliers),
                          np.linspace(0.9, 0.5, 12 - outliers)])
    grid = np.linspace(-1.0, top[0] + 1.0, 50)
    density = np.exp(-grid ** 2) / np.sqrt(np.pi)
    arrays = {"hessian_top": top, "gauss_newton_top": top * 0.99, "density_grid": grid,
              "density": density, "gradient_overlap": np.linspace(0.5, 0.9, 12)}
    attrs.update({"lambda_max": top[0], "trace": top.sum(), "num_classes": 10, "top_k": 12,
                  "n_samples": 200, "bn_mode": "eval"})
    return arrays, attrs


def checkpoint(run, epoch, batch_size, lr, momentum, lambda_max, status="ok", n_train=4000):
    arrays, attrs = spectrum(run, batch_size, 10, lambda_max / 20, status)
    attrs.update({"checkpoint": f"epoch-{epoch}", "optimizer": "sgd", "momentum": momentum})
    if status == "ok":
        attrs.update({"epoch": epoch, "step": epoch, "loss": 1.0, "gradient_norm": 0.1, "lr": lr,
                      "n_train": n_train})
    return arrays, attrs


def test_spectrum_table_counts_outliers_and_checks_the_claim(tmp_path):
    measurements = {"sb-s0": spectrum("sb-s0", 32, 10, 1.0), "lb-s0": spectrum("lb-s0", 2000, 9, 3.0)}
    table = hessian_spectrum_table(measurements, outlier_tolerance=0)
    runs = table[table["run"] != "claim"].set_index("run")
    assert runs.loc["sb-s0", "outlier_count"] == 10 and runs.loc["lb-s0", "outlier_count"] == 9
    assert runs.loc["lb-s0", "lambda_max"] == pytest.approx(60.0)
    sharper = table[table["claim"] == LAMBDA_MAX_CLAIM].iloc[0]
    assert (sharper["value"], sharper["verdict"], sharper["runs"]) == (3.0, "holds", "lb-s0 sb-s0")
    outliers = table[table["claim"] == OUTLIER_CLAIM].set_index("runs")
    assert outliers.loc["sb-s0", ["value", "verdict"]].tolist() == [0.0, "holds"]
    assert outliers.loc["lb-s0", ["value", "verdict"]].tolist() == [-1.0, "does not hold"]
    assert (table["run"] == "claim").sum() == 3
    loose = hessian_spectrum_table(measurements, outlier_tolerance=1)
    assert (loose.loc[loose["claim"] == OUTLIER_CLAIM, "verdict"] == "holds").all()
    flipped = hessian_spectrum_table({"sb-s0": spectrum("sb-s0", 32, 10, 3.0),
                                      "lb-s0": spectrum("lb-s0", 2000, 9, 1.0)}, 1)
    assert flipped.loc[flipped["claim"] == LAMBDA_MAX_CLAIM, "verdict"].item() == "does not hold"
    figure = plot_hessian_spectrum(measurements, table)
    assert len(figure.axes) == 3
    assert figure.axes[0].get_yscale() == "log"
    # the reference line at C = 10 in the outlier panel
    assert [line.get_ydata()[0] for line in figure.axes[2].get_lines()] == [10]
    assert "holds" in figure._suptitle.get_text()
    save_figure(figure, tmp_path / "spectrum.pdf", tmp_path / "spectrum.png")
    assert (tmp_path / "spectrum.png").read_bytes()[:4] == b"\x89PNG"


def test_spectrum_table_with_a_skipped_run_leaves_the_claim_unchecked():
    measurements = {"sb-s0": spectrum("sb-s0", 32, 10, 1.0),
                    "lb-s0": spectrum("lb-s0", 2000, 9, 3.0, status="skipped: lb-s0 diverged")}
    table = hessian_spectrum_table(measurements, 1)
    claims = table[table["run"] == "claim"].set_index("runs")
    assert claims.loc["lb-s0 sb-s0", "verdict"] == "inconclusive"
    assert claims.loc["lb-s0", ["verdict", "reason"]].tolist() == ["inconclusive",
                                                                   "skipped: lb-s0 diverged"]
    assert claims.loc["sb-s0", "verdict"] == "holds"
    figure = plot_hessian_spectrum(measurements, table)
    assert "inconclusive" in figure._suptitle.get_text()
    assert "skipped: lb-s0 diverged" in figure._suptitle.get_text()
    plt.close(figure)


def test_stability_threshold_with_momentum():
    assert stability_threshold(0.2, 0.0) == pytest.approx(10.0)
    assert stability_threshold(0.1, 0.9) == pytest.approx(38.0)


def test_along_training_table_and_threshold_line_for_full_batch_runs_only():
    measurements = [checkpoint("gd-s0", epoch, 4000, 0.2, 0.0, lam) for epoch, lam in
                    ((0, 0.5), (10, 4.0), (100, 9.8))]
    measurements += [checkpoint("sb-s0", epoch, 32, 0.05, 0.9, lam) for epoch, lam in ((0, 0.5), (5, 2.0))]
    measurements.append(checkpoint("lb-s0", 0, 2000, 0.2, 0.9, 0, status="skipped: lb-s0 diverged"))
    table = curvature_along_training_table(measurements, None, stability_window=0.5,
                                           stability_tolerance=0.05, min_overlap=0.5,
                                           min_peak_drop=0.1)
    ok = table[table["status"] == "ok"]
    assert (ok["overlap_k"] == 10).all()
    assert ok["gradient_overlap"].tolist() == pytest.approx([np.linspace(0.5, 0.9, 12)[9]] * 5)
    gd, sb = ok[ok["run"] == "gd-s0"], ok[ok["run"] == "sb-s0"]
    assert gd["full_batch"].all() and not sb["full_batch"].any()
    assert gd["stability_threshold"].tolist() == pytest.approx([10.0] * 3)
    assert sb["stability_threshold"].isna().all()
    assert ok["gradient_overlap_top1"].tolist() == pytest.approx([0.5] * 5)
    assert curvature_along_training_table(measurements, 3, 0.5, 0.05, 0.5, 0.1)[
        "gradient_overlap"].iloc[0] == pytest.approx(np.linspace(0.5, 0.9, 12)[2])
    with pytest.raises(ValueError, match="overlap_k=13"):
        curvature_along_training_table(measurements, 13, 0.5, 0.05, 0.5, 0.1)
    claims = table[table["run"] == "claim"]
    # the last half of gd's 100 epochs holds one checkpoint: λ_max 9.8 against 2/η = 10
    edge = claims[claims["claim"] == EDGE_CLAIM]
    assert edge["runs"].tolist() == ["gd-s0"] and edge["value"].item() == pytest.approx(0.98)
    assert edge["verdict"].item() == "holds"
    overlap = claims[claims["claim"] == OVERLAP_CLAIM].set_index("runs")
    assert overlap.loc["gd-s0", "value"] == pytest.approx(np.linspace(0.5, 0.9, 12)[9])
    assert overlap.loc["gd-s0", "verdict"] == "holds"
    assert overlap.loc["lb-s0", ["verdict", "reason"]].tolist() == ["inconclusive",
                                                                    "skipped: lb-s0 diverged"]
    # two checkpoints of sb are too few to tell a transient peak; gd is at the edge of stability
    transient = claims[claims["claim"] == TRANSIENT_CLAIM].set_index("runs")
    assert sorted(transient.index) == ["lb-s0", "sb-s0"]
    assert transient.loc["sb-s0", ["verdict", "reason"]].tolist() == ["inconclusive",
                                                                      "fewer than 3 checkpoints"]
    figure = plot_curvature_along_training(table)
    labels = [line.get_label() for line in figure.axes[0].get_lines()]
    assert labels.count("2(1+β)/η of gd") == 1 and len(labels) == 3
    assert figure.axes[0].get_xscale() == "symlog"
    assert "skipped: lb-s0 diverged" in figure._suptitle.get_text()
    plt.close(figure)



@pytest.mark.parametrize("lambdas, verdict, value", [
    ((1.0, 8.0, 6.0, 4.0), "holds", 0.5),          # rises, peaks inside, falls by half
    ((1.0, 8.0, 7.6, 7.5), "does not hold", 1 - 7.5 / 8.0),  # falls by less than 10%
    ((1.0, 2.0, 3.0, 4.0), "does not hold", 0.0),  # still rising: peak at the last checkpoint
    ((9.0, 2.0, 3.0, 1.0), "does not hold", 1 - 1.0 / 9.0),  # largest at init
])
def test_transient_curvature_claim_needs_an_interior_peak_and_a_drop(lambdas, verdict, value):
    rows = pd.DataFrame({"epoch": [0, 5, 10, 20], "lambda_max": lambdas})
    row = transient_curvature_claim(rows, "sb-s0", "", min_peak_drop=0.1)
    assert (row["verdict"], row["value"]) == (verdict, pytest.approx(value))
    if lambdas[-1] == 4.0 and verdict == "does not hold":
        assert row["reason"] == "λ_max is largest at the last checkpoint (epoch 20)"
