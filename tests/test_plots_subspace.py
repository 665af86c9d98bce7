"""Random-subspace training table: d_int per init scale, radius dependence, claim verdicts."""

import numpy as np
import pandas as pd
import pytest

from lossatlas.claims import Regime, apply_regime, claim_rows
from lossatlas.plots import save_figure
from lossatlas.plots.subspace import plot_subspace_training, subspace_training_table

D = 1000


def make_inputs(accuracy, diverged=()):
    """Runs for init scales × dims (None: full space) × seeds 0, 1 with test accuracy
    ``accuracy(scale, dim, seed)``."""
    finals, settings = {}, {}
    for scale in (0.5, 1.0, 2.0):
        for dim in (10, 100, 300, None):
            for seed in (0, 1):
                group = f"subspace_a{scale:g}_" + ("full" if dim is None else f"d{dim}")
                run = f"{group}-s{seed}"
                acc = accuracy(scale, dim, seed)
                finals[run] = {"status": "diverged" if run in diverged else "ok",
                               "train_loss": 1 - acc, "train_acc": acc, "test_loss": 1 - acc,
                               "test_acc": acc, "param_norm": 1.0, "dist_from_init": 0.5,
                               "epoch": 3}
                settings[run] = {"seed": seed, "init_scale": scale,
                                 "parameterization": ({"kind": "full"} if dim is None else
                                                      {"kind": "subspace", "dim": dim})}
    return finals, settings


def rows(table, kind):
    return table[table["run"] == kind].reset_index(drop=True)


def test_intrinsic_dimension_and_claims(tmp_path):
    # baseline 0.8 at every scale; subspace accuracy grows with d and with the scale
    def accuracy(scale, dim, seed):
        if dim is None:
            return 0.8
        return min(0.8, {10: 0.3, 100: 0.6, 300: 0.75}[dim] + 0.02 * scale + 0.01 * seed)

    table = subspace_training_table(*make_inputs(accuracy), dim_full=D, fraction=0.9)
    summary = rows(table, "intrinsic_dimension")
    # threshold 0.72: d=300 reaches 0.75 + 0.02 α + 0.005 at every scale; d=100 never
    assert list(summary["init_scale"]) == [0.5, 1.0, 2.0]
    assert summary["threshold_test_acc"].tolist() == pytest.approx([0.72] * 3)
    assert summary["d_int"].tolist() == [300, 300, 300]
    dependence = rows(table, "radius_dependence")
    assert dependence["spearman"].tolist() == pytest.approx([1.0, 1.0, 1.0])
    claims = rows(table, "claim")
    assert claims.loc[0, "value"] == pytest.approx(0.3) and claims.loc[0, "verdict"] == "does not hold"
    assert claims.loc[1, "value"] == pytest.approx(1.0) and claims.loc[1, "verdict"] == "holds"
    runs = table[table["kind"].isin(["subspace", "full"])]
    assert len(runs) == 24 and set(runs.loc[runs["kind"] == "full", "dim"]) == {D}
    save_figure(plot_subspace_training(table, 0.9), tmp_path / "f.pdf", tmp_path / "f.png")


def test_not_reached_and_skipped_runs():
    finals, settings = make_inputs(lambda scale, dim, seed: 0.9 if dim is None else 0.1,
                                   diverged=("subspace_a1_full-s0", "subspace_a1_full-s1"))
    table = subspace_training_table(finals, settings, dim_full=D, fraction=0.9)
    summary = rows(table, "intrinsic_dimension")
    assert summary["d_int"].isna().all()
    assert np.isnan(summary.loc[1, "baseline_test_acc"])
    claim = rows(table, "claim").loc[0]
    assert claim["verdict"] == "inconclusive" and "subspace_a1_full-s0 diverged" in claim["reason"]
    skipped = table[table["run"] == "subspace_a1_full-s0"].iloc[0]
    assert skipped["status"] == "skipped: subspace_a1_full-s0 diverged"
    assert np.isnan(skipped["test_acc"])

    finals, settings = make_inputs(lambda scale, dim, seed: 0.9 if dim is None else 0.1)
    claim = rows(subspace_training_table(finals, settings, dim_full=D, fraction=0.9), "claim").loc[0]
    assert claim["verdict"] == "does not hold" and claim["value"] == pytest.approx(0.3)
    assert "lower bound" in claim["reason"]
    assert isinstance(table, pd.DataFrame)


@pytest.mark.parametrize("reach, verdict, reason", [
    # reached first at d=100, not at 10: d_int in (10, 100], d_int / D in (0.01, 0.1]: 0.1 inside
    ({10: 0.3, 100: 0.75, 300: 0.75}, "inconclusive", "brackets d_int90 in (10, 100]"),
    # reached at d=10 already: d_int / D ≤ 0.01 < 0.1
    ({10: 0.75, 100: 0.75, 300: 0.75}, "holds", ""),
    # reached first at 300: d_int / D in (0.1, 0.3], at or above 0.1 whatever d between
    ({10: 0.3, 100: 0.6, 300: 0.75}, "does not hold", ""),
])
def test_the_d_int_verdict_needs_the_whole_bracket_on_one_side(reach, verdict, reason):
    finals, settings = make_inputs(lambda scale, dim, seed: 0.8 if dim is None else reach[dim])
    claim = rows(subspace_training_table(finals, settings, dim_full=D, fraction=0.9),
                 "claim").loc[0]
    assert claim["verdict"] == verdict and reason in claim["reason"]


def test_a_d_int_beyond_a_grid_that_ends_below_the_threshold_is_inconclusive():
    """Not reached by d = 300 of D = 10 000: d_int / D > 0.03 could still be below 0.1."""
    finals, settings = make_inputs(lambda scale, dim, seed: 0.9 if dim is None else 0.1)
    claim = rows(subspace_training_table(finals, settings, dim_full=10_000, fraction=0.9),
                 "claim").loc[0]
    assert claim["verdict"] == "inconclusive" and claim["value"] == pytest.approx(0.03)
    assert "a larger d decides" in claim["reason"]


def test_d_int_is_held_to_the_fit_of_its_baselines_and_the_radius_claim_is_not():
    """The d_int row reads the α = 1 runs, full-space baselines included, so an under-fit
    baseline (train error 30% > 1%) makes it inconclusive; the radius row reads subspace runs
    only and keeps its verdict."""
    finals, settings = make_inputs(lambda scale, dim, seed: 0.8 if dim is None else
                                   {10: 0.75, 100: 0.75, 300: 0.75}[dim] + 0.01 * scale)
    table = subspace_training_table(finals, settings, dim_full=D, fraction=0.9)
    d_int, radius = claim_rows(table).to_dict("records")
    assert set(d_int["runs"].split()) == {f"subspace_a1_{group}-s{seed}" for seed in (0, 1)
                                          for group in ("d10", "d100", "d300", "full")}
    assert not any("full" in run for run in radius["runs"].split())
    unfit = {"status": "ok", "train_acc": 0.7, "train_loss": 0.8}
    regime = Regime({"subspace_a1_full-s0": unfit, "subspace_a1_full-s1": unfit}, 0.01)
    assert d_int["verdict"] == "holds" and radius["verdict"] == "holds"
    held, radius_held = apply_regime(d_int, regime), apply_regime(radius, regime)
    assert held["verdict"] == "inconclusive" and "subspace_a1_full-s0" in held["reason"]
    assert radius_held["verdict"] == "holds"
