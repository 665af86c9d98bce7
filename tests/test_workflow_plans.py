"""The Snakemake workflow planned, not run: config validation at parse time (a bad config stops
before any job, naming its culprit), lint and formatting, dry runs of every shipped config (each
config's results in a folder of its own) and of one figure (only what it needs)."""

import re
import subprocess
from pathlib import Path

import pytest
import yaml
from test_workflow import (  # noqa: F401 (the copied workflow fixture)
    BIN,
    ROOT,
    SMOKE,
    SNAKEMAKE,
    expected_runs,
    planned_jobs,
    planned_paths,
    planned_rules,
    snakemake,
    workdir,
    write_config,
)


@pytest.mark.parametrize("override, culprit", [
    ({"training.lr_decay": 0.1}, "lr_decay"),
    ({"training.batch_size": "big"}, "big"),
    ({"model.name": "vgg"}, "vgg"),
    ({"dataset.name": "imagenet"}, "imagenet"),
    ({"runs.sb.optimiser": "adam"}, "optimiser"),
    ({"runs.sb.init_from": "nope"}, "runs.sb.init_from"),
    ({"model.name": "cnn1d", "model.depth": 3}, "model.depth"),
    ({"figures.lb_sb_interpolation.small_batch_run": "tiny"}, "small_batch_run"),
    ({"figures.surface_2d.roughness_points": 4}, "roughness_points"),
    ({"figures.hessian_spectrum.runs": ["sb", "huge"]}, "hessian_spectrum.runs"),
    ({"figures.curvature_along_training.overlap_k": 50}, "overlap_k"),
    ({"precision": "fp8"}, "fp8"),
    ({"runs.sb.parameterization": {"kind": "simplex"}}, "simplex"),
    ({"runs.sb.parameterization": {"kind": "subspace", "dim": 0}}, "['dim']"),
    ({"runs.sb.parameterization": {"kind": "subspace", "dim": 10**6}}, "runs.sb.parameterization.dim"),
    ({"runs.sb.parameterization": {"kind": "subspace"}}, "'dim' is a required property"),
    ({"runs.sb.init_scale": 0.0}, "init_scale"),
    ({"runs.lb.seeds": [1]}, "runs.lb_then_sb.init_from"),
    ({"figures.subspace_training.init_scales": [0.0, 1.0]}, "init_scales"),
    ({"figures.subspace_training.dims": [10, 10**6]}, "figures.subspace_training.dims"),
    ({"figures.subspace_training.training": {"parameterization": {"kind": "full"}}},
     "subspace_training"),
    ({"training.checkpoint_epochs": [0]}, "figures.trajectory_pca.run"),
    ({"runs.sb.checkpoint_step_range": [66, 60]}, "runs.sb.checkpoint_step_range=[66, 60]"),
    ({"runs.sb.checkpoint_step_range": [60, 10**5]}, "runs.sb.checkpoint_step_range"),
    ({"runs.sb.steps": 5, "runs.sb.checkpoint_step_range": [1, 4]},
     "runs.sb.steps=5 stops it at epoch 1"),
    ({"runs.sb.init_from": "sb"}, "runs.sb.init_from: run 'sb' starts from itself"),
    ({"runs.lb.init_from": "lb_then_sb"}, "(lb -> lb_then_sb -> lb)"),
    ({"runs.sb.lr": float("nan")}, "runs.sb.lr=nan"),
    ({"training.lr": float("inf")}, "training.lr=inf"),
    ({"training.train_fraction": float("nan")}, "training.train_fraction=nan"),
    ({"training.divergence_loss_factor": 1.0}, "divergence_loss_factor"),
    ({"figures.mode_connectivity.pairs": 2}, "mode_connectivity needs 4 independent solutions"),
    ({"figures.mode_connectivity.curves": ["spline"]}, "spline"),
    ({"figures.low_loss_subspace.modes": 2}, "modes"),
    ({"figures.low_loss_subspace.connectors": 0}, "connectors"),
    ({"figures.low_loss_subspace.samples": 0}, "samples"),
    ({"figures.low_loss_subspace.training": {"weight_decay": 0.1}}, "weight_decay"),
    ({"figures.low_loss_subspace.training": {"max_epochs": 2}},
     "figures.low_loss_subspace.training: structure training: max_epochs=2 is not the end of a round"),
    ({"sweep_measurements.curve_training": {"epochs": 1, "max_epochs": 2}},
     "sweep_measurements.curve_training: structure training: max_epochs=2"),
    ({"figures.ensembles.members": 4}, "ensembles needs 4 independent solutions"),
    ({"runs.wedge.checkpoint_epochs": [0, 1]}, "figures.ensembles.members"),
    ({"figures.lb_sb_interpolation.rise_alpha": 1.5}, "rise_alpha"),
    ({"dataset_sanity.run": "nope"}, "dataset_sanity.run"),
    ({"sweeps.grid.load.knob": "depth"}, "sweeps.grid.load.knob='depth': unknown knob"),
    ({"sweeps.grid.temperature.knob": "width"}, "sweeps.grid.temperature.knob='width'"),
    ({"sweeps.grid.load.values": []}, "values"),
    ({"sweeps.lr.values": [0.0, 0.1]}, "sweeps.lr.values[0]=0.0: lr must be > 0"),
    ({"sweeps.width.values": [0, 8]}, "sweeps.width.values[0]=0: width must be an integer"),
    ({"sweeps.width.values": [8, 8]}, "sweeps.width.values=[8, 8]: values must be distinct"),
    ({"sweeps.grid.seeds": [0]}, "sweeps.grid.seeds: the taxonomy needs at least two seeds"),
    ({"sweeps.l2.knob": "dropout"}, "sweeps.l2.knob='dropout'"),
    ({"figures.taxonomy_metrics.sweep": "lr"}, "sweep 'lr' is not a load x temperature grid"),
    ({"figures.hyperparams_curvature.sweeps": ["nope"]}, "unknown sweep 'nope'"),
    ({"curvature.density_grid": 1000}, "curvature.density_grid=1000"),
    ({"figures.surface_2d.parts": 36}, "figures.surface_2d.parts=36 exceeds the xnum x ynum = 35"),
    ({"sweep_measurements.cells_per_job": 0}, "cells_per_job"),
    ({"figures.subspace_training.training": {"norm": "group"}}, "group"),
    ({"second_scale": {"name": "w", "model": {"width": 40}, "figures": ["nope"]}},
     "config second_scale.figures: unknown figures nope"),
    ({"second_scale": {"name": "w", "model": {"name": "cnn1d"}, "figures": ["mli"]}},
     "config second_scale.model: name cannot change between scales"),
    ({"second_scale": {"name": "w/x", "model": {"width": 40}, "figures": ["mli"]}}, "w/x"),
    ({"second_scale": {"name": "w", "model": {"width": 40}, "figures": ["mli"],
                       "figure_settings": {"sgd_walk": {"run": "lb"}}}},
     "config second_scale.figure_settings: sgd_walk not in second_scale.figures (mli)"),
])
def test_bad_config_stops_before_any_job(workdir, override, culprit):
    configfile = write_config(workdir, "bad", override)
    result = snakemake(workdir, "-n", "--configfile", configfile, check=False)
    assert result.returncode != 0
    assert culprit in result.stdout + result.stderr
    assert not (workdir / "results").exists()


def test_a_sweep_above_max_runs_stops_naming_it_and_its_size(workdir):
    """The 200 x 200 width x lr grid with 2 seeds (80 000 runs) stops at parse time, before the
    run table and the DAG are built."""
    configfile = write_config(workdir, "huge_grid", {
        "sweeps.grid.load.values": list(range(1, 201)),
        "sweeps.grid.temperature.values": [round(0.001 * (i + 1), 3) for i in range(200)]})
    result = snakemake(workdir, "-n", "--configfile", configfile, check=False)
    assert result.returncode != 0
    assert "the config plans 80020 runs" in result.stderr
    assert ("config max_runs=2000: the config plans 80020 runs; sweeps.grid alone plans 80000 "
            "(200 x 200 values x 2 seeds)") in result.stdout + result.stderr


def test_the_planned_run_count_is_printed(workdir):
    smoke = yaml.safe_load((workdir / "config/smoke.yaml").read_text())
    result = snakemake(workdir, "-n", "mli", "--configfile", "config/smoke.yaml")
    assert f"lossatlas: the config plans {len(expected_runs(smoke))} runs" in result.stderr


def test_checkpoints_past_a_steps_cap_are_not_measured(workdir):
    """gd makes one step per epoch; steps: 2 stops it at epoch 2, so epoch 3 is never saved."""
    configfile = write_config(workdir, "capped", {"runs.gd.steps": 2})
    result = snakemake(workdir, "curvature_along_training", "-n", "-p", "--configfile", configfile)
    assert "curvature/gd-s0/epoch-2.h5" in result.stdout
    assert "curvature/gd-s0/epoch-3.h5" not in result.stdout


def test_sweep_cells_split_into_jobs_and_wedge_cuts_are_one(workdir):
    """cells_per_job: 1 measures each cell of a grid row in a job of its own; the two wedge planes
    are one job (one interpreter start)."""
    configfile = write_config(workdir, "split", {"sweep_measurements.cells_per_job": 1})
    result = snakemake(workdir, "taxonomy_metrics", "wedge_cuts", "-n", "--configfile",
                       configfile)
    for part in ("w4.p0", "w4.p1", "w16.p0", "w16.p1"):
        assert f"sweeps/grid/{part}.cells.csv" in result.stdout
    assert "sweeps/grid/w4.cells.csv" not in result.stdout
    assert re.search(r"measure_sweep_cells\s+4\b", result.stdout)
    assert re.search(r"measure_wedge_cuts\s+1\b", result.stdout)


def test_unknown_run_target_names_the_run(workdir):
    result = snakemake(workdir, f"{SMOKE}/runs/mnist1d/mlp/foo-s9/final.pt", "-n", "--configfile",
                       "config/smoke.yaml", check=False)
    assert result.returncode != 0
    assert "run 'foo-s9' is not in the config" in result.stdout + result.stderr


@pytest.mark.parametrize("configfile", sorted(p.name for p in (ROOT / "config").glob("*.yaml")))
def test_every_shipped_config_passes_a_dry_run(workdir, configfile):
    """... and writes every file under results/NAME/ (NAME its file name), but the dataset."""
    result = snakemake(workdir, "-n", "--configfile", f"config/{configfile}")
    folder = f"results/{Path(configfile).stem}/"
    outside = {path for path in planned_paths(result.stdout)
               if not path.startswith((folder, "resources/data/"))}
    assert not outside, sorted(outside)[:10]


def test_two_configs_share_no_result(workdir):
    """The default config (no --configfile) and the smoke config write every file in a folder of
    their own, results/config/ and results/smoke/, and share only the prepared dataset."""
    default = planned_paths(snakemake(workdir, "-n").stdout)
    smoke = planned_paths(snakemake(workdir, "-n", "--configfile", "config/smoke.yaml").stdout)
    assert {path.split("/")[1] for path in default if path.startswith("results/")} == {"config"}
    assert {path.split("/")[1] for path in smoke if path.startswith("results/")} == {"smoke"}
    assert f"{SMOKE}/claims.csv" in smoke and f"{SMOKE}/figures/mli.png" in smoke
    assert "results/config/claims.csv" in default and "results/config/figures/mli.png" in default
    assert default & smoke <= {"resources/data/mnist1d.h5"}


def test_a_second_scale_reruns_only_its_figures_in_a_folder_of_its_own(workdir):
    configfile = write_config(workdir, "scaled", {"second_scale": {
        "name": "mlp_w40", "model": {"width": 40}, "figures": ["hessian_spectrum", "sgd_walk"]}})
    result = snakemake(workdir, "-n", "--configfile", configfile)
    second = {rule: count for rule, count in planned_jobs(result.stdout).items()
              if rule.startswith("second_scale_")}
    assert second == {"second_scale_train": 2, "second_scale_measure_curvature": 2,
                      "second_scale_measure_sgd_walk": 1, "second_scale_plot_hessian_spectrum": 1,
                      "second_scale_plot_sgd_walk": 1}
    scaled = {path for path in planned_paths(result.stdout)
              if path.startswith("results/scaled/scales/")}
    assert "results/scaled/scales/mlp_w40/measurements/mnist1d/mlp/claims/sgd_walk.csv" in scaled
    assert "results/scaled/scales/mlp_w40/runs/mnist1d/mlp/sb-s0/final.pt" in scaled


def test_a_second_scales_figure_settings_change_only_its_dag(workdir):
    """figure_settings narrows curvature along training to the SB run at the second scale; the
    first scale keeps both of the smoke config's runs."""
    configfile = write_config(workdir, "narrowed", {"second_scale": {
        "name": "mlp_w40", "model": {"width": 40}, "figures": ["curvature_along_training"],
        "figure_settings": {"curvature_along_training": {"runs": ["sb"]}}}})
    result = snakemake(workdir, "-n", "--configfile", configfile)
    along = {rule for rule in planned_jobs(result.stdout) if "measure_curvature_along" in rule}
    assert along == {"measure_curvature_along_sb_s0", "measure_curvature_along_gd_s0",
                     "second_scale_measure_curvature_along_sb_s0"}


def test_lint_and_format():
    lint = subprocess.run([SNAKEMAKE, "--lint", "--configfile", "config/smoke.yaml"], cwd=ROOT,
                          capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    fmt = subprocess.run([str(BIN / "snakefmt"), "--check", "Snakefile", "workflow"], cwd=ROOT,
                         capture_output=True, text=True)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


@pytest.mark.parametrize("figure, rules", [
    ("lb_sb_interpolation", {"measure_lb_sb_interpolation", "plot_lb_sb_interpolation"}),
    ("hessian_spectrum", {"measure_curvature", "plot_hessian_spectrum"}),
    ("surface_2d", {"measure_surfaces", "merge_surfaces", "measure_curvature",
                    "plot_surface_2d"}),
])
def test_one_figure_plans_only_what_it_needs(workdir, figure, rules):
    result = snakemake(workdir, figure, "-n", "--configfile", "config/smoke.yaml")
    assert planned_rules(result.stdout) == {"prepare_dataset", "train", figure} | rules


def test_a_solutions_surfaces_in_one_part_are_one_job_without_a_merge(workdir):
    """parts: 1 writes a solution's surfaces (both direction kinds and the roughness profiles) in
    one job; the smoke config's two parts are two jobs and a merge per solution."""
    two = planned_jobs(snakemake(workdir, "surface_2d", "-n", "--configfile",
                                 "config/smoke.yaml").stdout)
    configfile = write_config(workdir, "one_part", {"figures.surface_2d.parts": 1})
    one = planned_jobs(snakemake(workdir, "surface_2d", "-n", "--configfile", configfile).stdout)
    assert two["merge_surfaces"] == 2 and two["measure_surfaces"] == 4
    assert one["measure_surfaces"] == 2 and "merge_surfaces" not in one


def test_a_training_job_trains_up_to_batches_per_job_batches_of_one_entry(workdir):
    """The smoke subspace figure's runs are three batches (d = 5, d = 50, the full space): two per
    job (the smoke config) makes two jobs, named after their first batch; one per job makes three.
    Other entries' jobs (a single batch each) are the same either way."""
    def training_jobs(configfile):
        jobs = planned_jobs(snakemake(workdir, "subspace_training", "mode_connectivity", "-n",
                                      "--configfile", configfile).stdout)
        return sorted(rule for rule in jobs if rule.startswith("train_batch_"))

    two = training_jobs("config/smoke.yaml")
    one = training_jobs(write_config(workdir, "one_batch", {"batch_training.batches_per_job": 1}))
    assert [rule for rule in two if "subspace" in rule] == [
        "train_batch_subspace_a0_5_d5_s0", "train_batch_subspace_a0_5_full_s0"]
    assert [rule for rule in one if "subspace" in rule] == [
        "train_batch_subspace_a0_5_d50_s0", "train_batch_subspace_a0_5_d5_s0",
        "train_batch_subspace_a0_5_full_s0"]
    assert [rule for rule in two if "subspace" not in rule] == [
        rule for rule in one if "subspace" not in rule] == ["train_batch_wedge_s0"]


def test_curvature_and_mli_start_one_interpreter_per_run_and_per_sweep(workdir):
    """Curvature along training is one job per run (all its epoch checkpoints), the final
    checkpoints one job each, and every MLI line one job."""
    smoke = yaml.safe_load((workdir / "config/smoke.yaml").read_text())
    along = smoke["figures"]["curvature_along_training"]["runs"]
    result = snakemake(workdir, "curvature_along_training", "hessian_spectrum", "mli", "-n",
                       "--configfile", "config/smoke.yaml")
    jobs = planned_jobs(result.stdout)
    assert {rule: count for rule, count in jobs.items() if "curvature" in rule} == {
        "measure_curvature": len(smoke["figures"]["hessian_spectrum"]["runs"]),
        **{f"measure_curvature_along_{run}_s0": 1 for run in along},
        "plot_curvature_along_training": 1, "curvature_along_training": 1}
    assert jobs["measure_mli_lines"] == 1
