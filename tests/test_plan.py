"""The cost plan: FLOPs of a model and of each job's work (lossatlas.plan) and the plan of the
default, smoke and paper configs (workflow/plan.py) against the Slurm profile's runtimes."""

import importlib.util
from pathlib import Path

import pytest
from torch import nn

from lossatlas.plan import (
    PRODUCT_PASSES,
    TRAIN_PASSES,
    JobCost,
    ModelCost,
    Sizes,
    format_plan,
    forward_flops,
    job_flops,
    over_limit,
    rule_family,
    undecidable_claims,
)

ROOT = Path(__file__).resolve().parents[1]
SIZES = Sizes(n_train=1000, n_test=200)
MLP = ModelCost(flops=100.0, parameters=50, batch_norm=False)
BN_NET = ModelCost(flops=100.0, parameters=50, batch_norm=True)


def test_forward_flops_counts_two_per_multiply_add():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    assert forward_flops(model, (4,)) == 2 * (4 * 3 + 3 * 2)
    conv = nn.Conv1d(1, 2, kernel_size=3)
    assert forward_flops(conv, (1, 10)) == 2 * (2 * 8 * 3)


def test_training_counts_steps_and_per_epoch_evaluation():
    run = {"model": {}, "epochs": 2, "batch_size": 100, "train_fraction": 0.5,
           "parameterization": {"kind": "full"}}
    flops = job_flops("train", {"runs": {"a-s0": run, "a-s1": run}}, SIZES, lambda knobs: MLP)
    per_run = (2 * 500 * TRAIN_PASSES + 3 * (500 + 200)) * 100.0
    assert flops == 2 * per_run
    subspace = {**run, "parameterization": {"kind": "subspace", "dim": 5}}
    flops = job_flops("train_batch", {"runs": {"a-s0": subspace}}, SIZES, lambda knobs: MLP)
    assert flops == per_run + 2 * 5 * 4.0 * 50 * 5


def test_structure_training_counts_its_cap_and_every_round_s_evaluation():
    """A figure's structures train as one job: its cost is the sum of theirs."""
    run = {"model": {}, "train_fraction": 1.0}
    training = {"epochs": 2, "max_epochs": 6}   # rounds of 2 and 4 epochs
    curve = {"spec": {"kind": "bezier"}, "points": ["a", "b"], "training": training}
    flops = job_flops("train_structures", {"structures": {"c": curve},
                                           "runs": {"a": run, "b": run}}, SIZES, lambda knobs: MLP)
    per_epoch_evaluation = 1000 + 200
    per_curve = (6 * 1000 * TRAIN_PASSES + 7 * per_epoch_evaluation + 3 * 17 * 1000) * 100.0
    assert flops == per_curve
    flops = job_flops("train_structures", {"structures": {"c": curve, "d": curve},
                                           "runs": {"a": run, "b": run}}, SIZES, lambda knobs: MLP)
    assert flops == 2 * per_curve
    complex_ = {"spec": {"kind": "complex", "connectors": 2, "samples": 5},
                "points": ["a", "b", "c"], "training": training}
    flops = job_flops("train_structures", {"structures": {"k": complex_}, "runs": {"a": run}},
                      SIZES, lambda knobs: MLP)
    assert flops == (6 * 1000 * TRAIN_PASSES * 5 + 7 * per_epoch_evaluation
                     + 3 * 3 * 15 * 1000) * 100.0


def test_evaluations_recompute_batch_norm_only_where_asked_and_present():
    """A surfaces part: its share of both grids (10 points each) and of the roughness profiles
    (the larger share of 3 directions in 2 parts, 2, x 7 points)."""
    settings = {"xnum": 5, "ynum": 4, "parts": 2, "bn_policy": "recompute",
                "roughness_directions": 3, "roughness_points": 7}
    run = {"model": {}, "train_fraction": 1.0}
    params = {"settings": settings, "run_settings": run}
    points = 2 * 10 + 2 * 7
    plain = job_flops("measure_surfaces", params, SIZES, lambda knobs: MLP)
    assert plain == points * (1000 + 200) * 100.0
    recomputed = job_flops("measure_surfaces", params, SIZES, lambda knobs: BN_NET)
    assert recomputed == points * (2 * 1000 + 200) * 100.0
    kept = {"settings": {**settings, "bn_policy": "keep"}, "run_settings": run}
    assert job_flops("measure_surfaces", kept, SIZES, lambda knobs: BN_NET) == plain


def test_curvature_counts_products_per_checkpoint():
    curvature = {"n_samples": 300, "max_iter": 10, "trace_products": 5, "density_vectors": 2,
                 "density_steps": 4}
    params = {"settings": {"model": {}, "train_fraction": 1.0}, "curvature": curvature,
              "checkpoints": ["epoch-0", "final"]}
    flops = job_flops("measure_curvature_along", params, SIZES, lambda knobs: MLP)
    assert flops == (15 + 15 + 2 * 2 * 4) * 300 * PRODUCT_PASSES * 100.0


def test_rules_without_model_passes_cost_nothing():
    assert job_flops("plot_mli", {}, SIZES, lambda knobs: MLP) == 0.0


def test_generated_rules_are_planned_by_family():
    assert rule_family("train_batch_taxonomy_w4_bs32-s0") == "train_batch"
    assert rule_family("measure_curvature_along_sb_s0") == "measure_curvature_along"
    assert rule_family("train") == "train"


def test_plan_warns_of_the_jobs_over_their_limit():
    jobs = [JobCost("train", "run=a-s0", 120e9, 150), JobCost("train", "run=b-s0", 60e9, 150),
            JobCost("plot_mli", "plot_mli", 0.0, 15)]
    assert over_limit(jobs, 1e9) == []
    text = format_plan(jobs, 1e9, "given")
    assert "| train | 2 | 0.00018 | 0.05 | run=a-s0 | 2 | 150 |" in text
    assert "| 1 jobs without model passes (plot_mli)" in text
    assert "WARNING" not in text
    assert over_limit(jobs, 1e7) == [jobs[0]]
    text = format_plan(jobs, 1e7, "given")
    assert "WARNING: train run=a-s0: 200 min estimated, over its runtime limit of 150 min" in text
    assert "run=b-s0" not in text.split("Total:")[1]


def test_undecidable_claims_name_what_the_config_lacks():
    bn_sgd = {"optimizer": "sgd", "model": {"norm": "batch"}}
    params = {"measure_mli_lines": {"settings": {"sb-s0": bn_sgd, "lb-s0": bn_sgd}},
              "dataset_sanity": {"dataset": "cifar10", "model": "cnn2d"},
              "measure_goldilocks": {"knobs": {"norm": "batch"}}}
    reasons = undecidable_claims(params)
    assert [reason.split(":")[0] for reason in reasons] == ["mli"] * 4 + ["dataset_sanity",
                                                                          "goldilocks"]
    assert "no SGD run without batch norm" in reasons[0]
    assert "only ['sgd'] runs" in reasons[1]
    assert "no published test accuracy of cnn2d on cifar10" in reasons[4]
    params["measure_mli_lines"]["settings"].update(
        {"adam-s0": {"optimizer": "adam", "model": {"norm": "batch"}},
         "plain-s0": {"optimizer": "sgd", "model": {"norm": "none"}}})
    params["dataset_sanity"]["model"] = "resnet20"
    params["measure_goldilocks"]["knobs"] = {"norm": "none"}
    assert undecidable_claims(params) == []


@pytest.fixture(scope="module")
def plan_cli():
    spec = importlib.util.spec_from_file_location("plan_cli", ROOT / "workflow/plan.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("config", ["config.yaml", "smoke.yaml", "paper.yaml"])
def test_every_config_plans_within_the_slurm_runtimes_and_decides_its_claims(plan_cli, config,
                                                                              capsys):
    rate = ["--flops-per-second", str(plan_cli.ASSUMED_GPU_FLOPS)]
    assert plan_cli.main(["--configfile", str(ROOT / "config" / config), *rate]) == 0
    text = capsys.readouterr().out
    assert "| train" in text and "Total:" in text
    assert "WARNING" not in text and "UNDECIDABLE" not in text
