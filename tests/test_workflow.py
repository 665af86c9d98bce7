"""The Snakemake workflow: config validation at parse time, lint, formatting, every config's
results in a folder of its own, and the smoke config run end to end (a copy of the workflow in a
temporary directory, so results/ is untouched)."""

import html
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from lossatlas import io
from lossatlas.claims import CLAIM_COLUMNS, VERDICTS
from lossatlas.plots.curvature import LAMBDA_MAX_CLAIM

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SNAKEMAKE = str(BIN / "snakemake")
FIGURES = ["lb_sb_interpolation", "surface_2d", "trajectory_pca", "mli", "sgd_walk",
           "hessian_spectrum", "curvature_along_training", "subspace_training", "goldilocks",
           "long_short_directions", "wedge_cuts", "mode_connectivity", "low_loss_subspace",
           "ensembles", "hyperparams_curvature", "taxonomy_metrics", "taxonomy_phases"]
TAGS = {"width": "w", "lr": "lr", "weight_decay": "wd", "batch_size": "bs"}
SMOKE = "results/smoke"  # the smoke config's results (README, "Where outputs go")


def expected_runs(config):
    """Run ids the config defines: each run group per seed, and the subspace sweep's groups."""
    runs = {f"{name}-s{seed}" for name, group in config["runs"].items()
            for seed in group.get("seeds", [0])}
    subspace = config["figures"]["subspace_training"]
    for scale in subspace["init_scales"]:
        for kind in [*(f"d{dim}" for dim in subspace["dims"]), "full"]:
            runs |= {f"subspace_a{scale:g}_{kind}-s{seed}" for seed in subspace["seeds"]}
    for name, sweep in config.get("sweeps", {}).items():
        if "load" in sweep:
            load, temperature = sweep["load"], sweep["temperature"]
            groups = [f"{name}_{TAGS[load['knob']]}{a:g}_{TAGS[temperature['knob']]}{b:g}"
                      for a in load["values"] for b in temperature["values"]]
        else:
            groups = [f"{name}_{TAGS[sweep['knob']]}{v:g}" for v in sweep["values"]]
        runs |= {f"{group}-s{seed}" for group in groups for seed in sweep["seeds"]}
    return sorted(runs)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A copy of the workflow (Snakefile, workflow/, config/) to run in."""
    work = tmp_path_factory.mktemp("workflow")
    shutil.copy(ROOT / "Snakefile", work / "Snakefile")
    shutil.copytree(ROOT / "workflow", work / "workflow")
    shutil.copytree(ROOT / "config", work / "config")
    shutil.copytree(ROOT / "envs", work / "envs")
    return work


def snakemake(workdir, *args, check=True):
    result = subprocess.run([SNAKEMAKE, "--cores", "2", *args], cwd=workdir, capture_output=True,
                            text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def write_config(workdir, name, overrides, as_smoke=False):
    """The smoke config with ``overrides`` (dotted keys) as ``config/NAME.yaml``, whose results go
    to ``results/NAME``; with ``as_smoke``, as ``config/NAME/smoke.yaml``: a variant under the
    smoke config's name, whose results are the smoke run's (``results/smoke``), so that Snakemake
    reruns only what the overrides touch."""
    config = yaml.safe_load((workdir / "config/smoke.yaml").read_text())
    for key, value in overrides.items():
        section = config
        *parents, last = key.split(".")
        for parent in parents:
            section = section.setdefault(parent, {})
        section[last] = value
    path = Path("config", name, "smoke.yaml") if as_smoke else Path("config", f"{name}.yaml")
    (workdir / path).parent.mkdir(exist_ok=True)
    (workdir / path).write_text(yaml.safe_dump(config))
    return str(path)


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


def test_sweep_cells_and_wedge_cuts_split_into_jobs(workdir):
    """cells_per_job: 1 measures each cell of a grid row in a job of its own; the two wedge planes
    are two jobs."""
    configfile = write_config(workdir, "split", {"sweep_measurements.cells_per_job": 1})
    result = snakemake(workdir, "taxonomy_metrics", "wedge_cuts", "-n", "--configfile",
                       configfile)
    for part in ("w4.p0", "w4.p1", "w16.p0", "w16.p1"):
        assert f"sweeps/grid/{part}.cells.csv" in result.stdout
    assert "sweeps/grid/w4.cells.csv" not in result.stdout
    assert re.search(r"measure_sweep_cells\s+4\b", result.stdout)
    assert re.search(r"measure_wedge_cuts\s+2\b", result.stdout)


def test_unknown_run_target_names_the_run(workdir):
    result = snakemake(workdir, f"{SMOKE}/runs/mnist1d/mlp/foo-s9/final.pt", "-n", "--configfile",
                       "config/smoke.yaml", check=False)
    assert result.returncode != 0
    assert "run 'foo-s9' is not in the config" in result.stdout + result.stderr


def planned_paths(dry_run_output):
    """Every file the jobs of a dry run write: their outputs, logs and benchmarks."""
    paths = set()
    for line in dry_run_output.splitlines():
        key, _, value = line.strip().partition(": ")
        if key in ("output", "log", "benchmark"):
            paths |= set(value.split(", "))
    return paths


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


def test_lint_and_format():
    lint = subprocess.run([SNAKEMAKE, "--lint", "--configfile", "config/smoke.yaml"], cwd=ROOT,
                          capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    fmt = subprocess.run([str(BIN / "snakefmt"), "--check", "Snakefile", "workflow"], cwd=ROOT,
                         capture_output=True, text=True)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def planned_jobs(dry_run_output):
    """Rule name -> job count of a dry run (its job-stats table)."""
    counts, in_table = {}, False
    for line in dry_run_output.splitlines():
        if line.startswith("job ") and "count" in line:
            in_table = True
            continue
        if in_table:
            parts = line.split()
            if not parts or parts[0] == "total":
                break
            if not set(parts[0]) <= set("-"):
                counts[parts[0]] = int(parts[1])
    return counts


def planned_rules(dry_run_output):
    """Rule names of the jobs a dry run plans."""
    return set(planned_jobs(dry_run_output))


@pytest.mark.parametrize("figure, rules", [
    ("lb_sb_interpolation", {"measure_lb_sb_interpolation", "plot_lb_sb_interpolation"}),
    ("hessian_spectrum", {"measure_curvature", "plot_hessian_spectrum"}),
    ("surface_2d", {"surface_directions", "measure_surface_2d_part", "merge_surface_2d",
                    "measure_roughness", "measure_curvature", "plot_surface_2d"}),
])
def test_one_figure_plans_only_what_it_needs(workdir, figure, rules):
    result = snakemake(workdir, figure, "-n", "--configfile", "config/smoke.yaml")
    assert planned_rules(result.stdout) == {"prepare_dataset", "train", figure} | rules


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


@pytest.mark.workflow
def test_smoke_run_end_to_end(workdir):
    snakemake(workdir, "--profile", "workflow/profiles/ci")
    logs, benchmarks = workdir / f"{SMOKE}/logs", workdir / f"{SMOKE}/benchmarks"
    for log in logs.rglob("*.log"):
        timings = io.job_timings(log)
        assert 0 < timings["startup_cpu"] <= timings["cpu"], log
        benchmark = pd.read_csv(benchmarks / log.relative_to(logs).with_suffix(".tsv"), sep="\t")
        assert benchmark["s"].iloc[0] > 0, log
    summary = subprocess.run([sys.executable, str(ROOT / "benchmarks/summarize_benchmarks.py"),
                              "--results", SMOKE, "--floor-runs", "1"], cwd=workdir,
                             capture_output=True, text=True, check=True).stdout
    assert "| … beyond the torch floor |" in summary and "| train |" in summary
    assert "average busy cores" in summary and "Critical path (" in summary
    assert f"| {SMOKE}/logs/prepare_dataset/mnist1d.log | prepare_dataset | 0.0 |" in summary
    figures = workdir / f"{SMOKE}/figures"
    for figure in FIGURES:
        for ext in ("pdf", "png"):
            assert (figures / f"{figure}.{ext}").stat().st_size > 1000
    runs = workdir / f"{SMOKE}/runs/mnist1d/mlp"
    smoke = yaml.safe_load((workdir / "config/smoke.yaml").read_text())
    assert sorted(p.name for p in runs.iterdir()) == expected_runs(smoke)
    for run in runs.iterdir():
        assert json.loads((run / "status.json").read_text())["status"] == "ok"
        assert not (run / "resume.pt").exists()
    table = pd.read_csv(workdir / f"{SMOKE}/measurements/mnist1d/mlp/lb_sb_interpolation.csv")
    assert set(table["line"]) == {"lb_to_sb", "lb_to_continuation"}
    assert (table["status"] == "ok").all()
    assert set(table["split"]) == {"train", "test"}
    measurements = workdir / f"{SMOKE}/measurements/mnist1d/mlp"
    for kind in ("random", "hessian"):
        arrays, attrs = io.read_h5(measurements / f"surface_2d/{kind}/sb-s0.h5")
        assert arrays["train_loss"].shape == (5, 7) and attrs["status"] == "ok"
        assert {"xcoordinates", "ycoordinates", "train_acc", "test_loss", "test_acc"} <= set(arrays)
        assert 0 <= arrays["train_acc"].min() and 1 < arrays["train_acc"].max() <= 100
        assert attrs["orientation"].startswith("values[iy, ix]") and attrs["bn_policy"] == "none"
        assert attrs["direction_kind"] == kind
    (directions,) = (measurements / "trajectory_pca").glob("*.directions.h5")
    arrays, _ = io.read_h5(str(directions).replace(".directions.h5", ".h5"))
    assert arrays["proj_xcoord"].shape == arrays["proj_ycoord"].shape
    assert io.read_h5(directions)[0]["explained_variance_ratio_"].shape == (2,)
    spectrum = pd.read_csv(measurements / "hessian_spectrum.csv")
    runs = spectrum[spectrum["run"] != "claim"]
    assert set(runs["run"]) == {"sb-s0", "lb-s0"} and (runs["status"] == "ok").all()
    claim = spectrum[spectrum["claim"] == LAMBDA_MAX_CLAIM].iloc[0]
    assert claim["verdict"] in VERDICTS and claim["runs"] == "lb-s0 sb-s0"
    along = pd.read_csv(measurements / "curvature_along_training.csv")
    gd = along[along["run"] == "gd-s0"]
    assert gd["full_batch"].all() and (gd["stability_threshold"] == 2 / 0.2).all()
    curves = pd.read_csv(measurements / "mode_connectivity.csv")
    assert set(curves["path"].dropna()) == {"line", "bezier", "polychain"}
    structures = workdir / f"{SMOKE}/structures/mnist1d/mlp"
    assert sorted(p.name for p in structures.iterdir()) == [
        "bezier_wedge-s0_wedge-s1", "complex_wedge_n3_k2", "polychain_wedge-s0_wedge-s1"]
    for structure in structures.iterdir():
        record = json.loads((structure / "status.json").read_text())["convergence"]
        assert isinstance(record["converged"], bool) and record["max_epochs"] == 3
        assert record["epochs"] in (1, 3) and record["criterion"] and record["detail"]
        assert [r["epoch"] for r in record["rounds"]] == [0, 1, 3][:len(record["rounds"])]
        assert not (structure / "resume.pt").exists()
    complex_record = json.loads((structures / "complex_wedge_n3_k2/status.json").read_text())
    # tolerance and floor 0: trained to its cap, unconverged (the claim gate's inconclusive path)
    assert complex_record["convergence"]["epochs"] == 3
    assert not complex_record["convergence"]["converged"]
    cells = pd.concat([pd.read_csv(path) for path in
                       (measurements / "sweeps/grid").glob("*.cells.csv")])
    assert {"curve_converged", "curve_epochs", "curve_convergence"} <= set(cells.columns)
    assert cells["curve_epochs"].isin([1, 3]).all()
    for figure in ("subspace_training", "goldilocks", "long_short_directions", "wedge_cuts",
                   "mode_connectivity", "low_loss_subspace", "ensembles"):
        table = pd.read_csv(measurements / f"{figure}.csv")
        claims = table[table["run"] == "claim"]
        assert len(claims) >= 1 and set(claims["verdict"]) <= {"holds", "does not hold",
                                                                 "inconclusive"}
    fresh = {name for name, group in smoke["runs"].items() if "init_from" not in group}
    mli_runs = {run for run in expected_runs(smoke) if run.rsplit("-s", 1)[0] in fresh}
    assert set(pd.read_csv(measurements / "mli.csv")["run"]) == mli_runs
    claims = pd.read_csv(workdir / f"{SMOKE}/claims.csv", keep_default_na=False, na_values=[""])
    assert list(claims.columns) == list(CLAIM_COLUMNS)
    assert set(claims["figure"]) == {*FIGURES, "dataset_sanity"}
    assert set(claims["verdict"]) <= set(VERDICTS) and (claims["config"] == "smoke").all()
    assert claims.loc[claims["verdict"] == "inconclusive", "reason"].notna().all()
    reference = claims[claims["figure"] == "dataset_sanity"].set_index("runs")
    assert set(reference.index) == {"sb-s0", "cnn1d-s0"}
    assert "| figure | work | claim |" in (workdir / f"{SMOKE}/claims.md").read_text()
    snakemake(workdir, "--profile", "workflow/profiles/ci", "--report", f"{SMOKE}/report.html")
    report = (workdir / f"{SMOKE}/report.html").read_text(errors="ignore")
    assert "Claims checked" in report and "#c8e6c9" in report
    assert "System Message" not in report and "system-message" not in report, "a caption breaks"
    for figure in FIGURES:
        assert figure in report


@pytest.mark.workflow
def test_reruns_only_what_a_config_change_touches(workdir):
    """After the smoke run, variants of the smoke config under its name (so in its results folder):
    spelling out a default or reordering lines reruns nothing; a roughness setting reruns the
    roughness measurements, the figure and the claims table (and claims_by_scale, drawn from it),
    not the surfaces."""
    assert (workdir / f"{SMOKE}/figures/surface_2d.png").exists(), "runs after the smoke run"
    smoke = (workdir / "config/smoke.yaml").read_text()
    variants = {
        "default_spelled_out": (smoke.replace("training:\n", "training:\n  weight_decay: 0.0\n", 1),
                                set()),
        "lines_swapped": (smoke.replace("    xnum: 7\n    ynum: 5\n", "    ynum: 5\n    xnum: 7\n"),
                          set()),
        "roughness_changed": (smoke.replace("roughness_points: 5", "roughness_points: 7"),
                              {"all", "claims", "plot_claims_by_scale", "measure_roughness",
                               "plot_surface_2d"}),
    }
    for name, (text, expected) in variants.items():
        assert text != smoke, name
        (workdir / "config" / name).mkdir()
        (workdir / "config" / name / "smoke.yaml").write_text(text)
        result = snakemake(workdir, "-n", "--configfile", f"config/{name}/smoke.yaml")
        assert planned_rules(result.stdout) == expected, f"{name}:\n{result.stdout}"


@pytest.mark.workflow
def test_an_added_run_group_plans_only_its_own_work(workdir):
    """After the smoke run: a run group added to runs (with the finished wedge group's training
    settings) trains alone; no finished run, structure or measurement of another run reruns, only
    the figure that shows every run (mli: its one job measures every line), the claims table and
    claims_by_scale."""
    assert (workdir / f"{SMOKE}/figures/mli.png").exists(), "runs after the smoke run"
    configfile = write_config(workdir, "extra_group", {"runs.extra": {"lr": 0.1}}, as_smoke=True)
    result = snakemake(workdir, "-n", "--configfile", configfile)
    assert planned_rules(result.stdout) == {"all", "claims", "plot_claims_by_scale", "train",
                                            "measure_mli_lines", "plot_mli"}, result.stdout
    outputs = [line for line in result.stdout.splitlines() if line.strip().startswith("output:")]
    trained = set(re.findall(rf"{SMOKE}/runs/mnist1d/mlp/([^/]+)/final\.pt", "\n".join(outputs)))
    assert trained == {"extra-s0"}


@pytest.mark.workflow
def test_ensembles_of_fewer_members_than_complex_modes(workdir):
    """After the smoke run: 2 ensemble members beside a 3-mode complex (the ensembles job reads
    the settings of every mode, not only of its members)."""
    assert (workdir / f"{SMOKE}/figures/ensembles.png").exists(), "runs after the smoke run"
    configfile = write_config(workdir, "two_members", {"figures.ensembles.members": 2},
                              as_smoke=True)
    snakemake(workdir, "ensembles", "--configfile", configfile)
    _, attrs = io.read_h5(workdir / f"{SMOKE}/measurements/mnist1d/mlp/ensembles.h5")
    assert json.loads(attrs["runs"]) == ["wedge-s0", "wedge-s1"]
    assert json.loads(attrs["modes"]) == ["wedge-s0", "wedge-s1", "wedge-s2"]


@pytest.mark.workflow
def test_diverged_run_is_skipped_visibly(workdir):
    configfile = write_config(workdir, "diverge", {"runs.lb.lr": 1.0e9, "runs.lb.momentum": 0.99},
                              as_smoke=True)
    snakemake(workdir, "lb_sb_interpolation", "--forcerun", "train", "--configfile", configfile)
    status = json.loads((workdir / f"{SMOKE}/runs/mnist1d/mlp/lb-s0/status.json").read_text())
    assert status["status"] == "diverged" and "at epoch" in status["divergence"]
    table = pd.read_csv(workdir / f"{SMOKE}/measurements/mnist1d/mlp/lb_sb_interpolation.csv")
    assert table["status"].str.startswith("skipped: lb-s0").all()
    assert (workdir / f"{SMOKE}/figures/lb_sb_interpolation.png").exists()
    claims = pd.read_csv(workdir / f"{SMOKE}/measurements/mnist1d/mlp/claims/lb_sb_interpolation.csv")
    assert (claims["verdict"] == "inconclusive").all()
    assert claims["reason"].str.startswith("skipped: lb-s0").all()
    snakemake(workdir, "surface_2d", "hessian_spectrum", "--configfile", configfile)
    _, attrs = io.read_h5(workdir / f"{SMOKE}/measurements/mnist1d/mlp/surface_2d/hessian/lb-s0.h5")
    assert attrs["status"] == "skipped: lb-s0 diverged"
    spectrum = pd.read_csv(workdir / f"{SMOKE}/measurements/mnist1d/mlp/hessian_spectrum.csv")
    assert spectrum.loc[spectrum["run"] == "lb-s0", "status"].str.startswith("skipped: lb-s0").all()


@pytest.mark.workflow
def test_structures_through_a_diverged_solution_are_skipped_visibly(workdir):
    configfile = write_config(workdir, "diverge_wedge", {"runs.wedge.lr": 1.0e9,
                                                         "runs.wedge.momentum": 0.99},
                              as_smoke=True)
    snakemake(workdir, "mode_connectivity", "low_loss_subspace", "ensembles", "--forcerun",
              "train_batch_wedge_s0", "--configfile", configfile)
    status = json.loads((workdir / f"{SMOKE}/structures/mnist1d/mlp/complex_wedge_n3_k2/"
                         "status.json").read_text())
    assert status["status"] == "skipped" and "diverged" in status["reason"]
    measurements = workdir / f"{SMOKE}/measurements/mnist1d/mlp"
    for figure in ("mode_connectivity", "low_loss_subspace", "ensembles"):
        table = pd.read_csv(measurements / f"{figure}.csv")
        assert table.loc[table["run"] != "claim", "status"].str.startswith("skipped").all()
        assert (table.loc[table["run"] == "claim", "verdict"] == "inconclusive").all()
        assert (workdir / f"{SMOKE}/figures/{figure}.png").exists()


@pytest.mark.workflow
def test_diverged_sweep_cells_are_hatched_and_the_grid_renders(workdir):
    """A learning rate that diverges every run of a temperature: those cells are recorded with the
    reason (each member of the vmapped batch diverges on its own), the other cells are measured."""
    configfile = write_config(workdir, "diverge_grid",
                              {"sweeps.grid.temperature.values": [0.02, 1.0e9]}, as_smoke=True)
    snakemake(workdir, "taxonomy_phases", "--configfile", configfile)
    runs = workdir / f"{SMOKE}/runs/mnist1d/mlp"
    assert json.loads((runs / "grid_w4_lr1e09-s0/status.json").read_text())["status"] == "diverged"
    assert json.loads((runs / "grid_w4_lr0.02-s0/status.json").read_text())["status"] == "ok"
    table = pd.read_csv(workdir / f"{SMOKE}/measurements/mnist1d/mlp/taxonomy_phases.csv")
    cells = table[table["run"] == "cell"].set_index("group")
    assert cells.loc["grid_w4_lr1e09", "status"].startswith("skipped: grid_w4_lr1e09-s")
    assert cells.loc["grid_w16_lr0.02", "status"] == "ok"
    assert cells.loc["grid_w16_lr0.02", "phase"] in {"I", "II", "III", "IV-A", "IV-B"}
    assert (workdir / f"{SMOKE}/figures/taxonomy_phases.png").exists()


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--window-size=1400,900", "--virtual-time-budget=20000"]
# Appended to a copy of the report: once it has rendered, writes where the title and the claims
# table's header row lie in the 1400×900 window, and whether they are drawn on top (not under the
# menu or the rule graph) at their left end and middle.
LAYOUT_PROBE = """<script>
window.addEventListener("load", () => setTimeout(() => {
  const place = (element) => {
    if (!element) return null;
    const box = element.getBoundingClientRect();
    const drawn = (x) => element.contains(document.elementFromPoint(x, box.y + box.height / 2));
    return {top: box.top, bottom: box.bottom, left: box.left, right: box.right,
            drawn: drawn(box.left + 2) && drawn(box.left + box.width / 2)};
  };
  const title = [...document.querySelectorAll("h1")].find(h => h.textContent === "Claims checked");
  const probe = document.createElement("pre");
  probe.id = "layout-probe";
  probe.textContent = JSON.stringify({title: place(title),
                                      header: place(document.querySelector(".claims-table tr"))});
  document.body.appendChild(probe);
}, 3000));
</script>
"""


def first_screen_layout(report, tmp_path):
    """Where the report's title and claims header row lie when headless Chromium opens it at
    1400×900 (``LAYOUT_PROBE``), with a screenshot beside the probed copy."""
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is needed (apt-get install -y chromium; .ci/run does it)"
    probed = tmp_path / "report.html"
    head, body_end, tail = report.read_text().rpartition("</body>")  # the page's own, the last
    probed.write_text(head + LAYOUT_PROBE + body_end + tail)
    flags = [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    subprocess.run([chromium, *flags, f"--screenshot={tmp_path / 'screen.png'}",
                    probed.as_uri()], capture_output=True, check=True, timeout=300)
    dom = subprocess.run([chromium, *flags, "--dump-dom", probed.as_uri()], capture_output=True,
                         text=True, check=True, timeout=300).stdout
    start = dom.index('<pre id="layout-probe">') + len('<pre id="layout-probe">')
    return json.loads(html.unescape(dom[start:dom.index("</pre>", start)]))


@pytest.mark.workflow
def test_report_opens_on_the_title_and_the_claims_table(workdir, tmp_path):
    """After the smoke run: the report, at 1400×900, shows the title and the claims table's header
    row on its first screen, each drawn on top (not under the rule graph)."""
    report = workdir / f"{SMOKE}/report.html"
    assert report.exists(), "runs after the smoke run, which builds the report"
    layout = first_screen_layout(report, tmp_path)
    for name in ("title", "header"):
        place = layout[name]
        assert place is not None, f"no {name} in the report"
        assert 0 <= place["top"] < place["bottom"] <= 900 and 0 <= place["left"], (name, place)
        assert place["right"] <= 1400 and place["drawn"], (name, place)
