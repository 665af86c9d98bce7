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

import numpy as np
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


def planned_paths(dry_run_output):
    """Every file the jobs of a dry run write: their outputs, logs and benchmarks."""
    paths = set()
    for line in dry_run_output.splitlines():
        key, _, value = line.strip().partition(": ")
        if key in ("output", "log", "benchmark"):
            paths |= set(value.split(", "))
    return paths


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
    # batches_per_job: 2 — the subspace dimensions 5 and 50 are two batches of one job
    log = (workdir / f"{SMOKE}/logs/train/mnist1d/mlp/batch_subspace_a0_5_d5_s0.log").read_text()
    assert "batch subspace_a0_5_d5_s0 (1 of 2 in this job)" in log
    assert "batch subspace_a0_5_d50_s0 (2 of 2 in this job)" in log
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
    # resume files (mode_connectivity.resume.pt, ...) are gone, checksums too, once trained
    assert not list((workdir / SMOKE).rglob("*resume.pt*"))
    assert sorted(p.name for p in structures.iterdir()) == [
        "bezier_wedge-s0_wedge-s1", "complex_wedge_n3_k2", "polychain_wedge-s0_wedge-s1"]
    for structure in structures.iterdir():
        record = json.loads((structure / "status.json").read_text())["convergence"]
        assert isinstance(record["converged"], bool) and record["max_epochs"] == 3
        assert record["epochs"] in (1, 3) and record["criterion"] and record["detail"]
        assert [r["epoch"] for r in record["rounds"]] == [0, 1, 3][:len(record["rounds"])]
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
    surfaces jobs (a solution's surfaces and roughness are one job), the figure and the claims
    table (and claims_by_scale, drawn from it); a trajectory PCA setting reruns only that
    measurement, its figure and the tables."""
    assert (workdir / f"{SMOKE}/figures/surface_2d.png").exists(), "runs after the smoke run"
    smoke = (workdir / "config/smoke.yaml").read_text()
    variants = {
        "default_spelled_out": (smoke.replace("training:\n", "training:\n  weight_decay: 0.0\n", 1),
                                set()),
        "lines_swapped": (smoke.replace("    xnum: 7\n    ynum: 5\n", "    ynum: 5\n    xnum: 7\n"),
                          set()),
        "roughness_changed": (smoke.replace("roughness_points: 5", "roughness_points: 7"),
                              {"all", "claims", "plot_claims_by_scale", "measure_surfaces",
                               "merge_surfaces", "plot_surface_2d"}),
        "trajectory_changed": (smoke.replace("    num: 5\n", "    num: 7\n"),
                               {"all", "claims", "plot_claims_by_scale", "measure_trajectory_pca",
                                "plot_trajectory_pca"}),
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
    roughness = io.read_csv(workdir / f"{SMOKE}/measurements/mnist1d/mlp/roughness/lb-s0.csv")
    assert list(roughness["status"]) == ["skipped: lb-s0 diverged"]
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


@pytest.mark.workflow
def test_a_surface_in_one_part_equals_its_merged_parts(workdir):
    """After the smoke run (two parts and a merge per solution): the same surfaces in one part,
    written whole by one job per solution, hold the same grids and values, and its roughness
    profiles (split 2 + 1 between the parts) the same table."""
    measurements = workdir / f"{SMOKE}/measurements/mnist1d/mlp"
    paths = [measurements / f"surface_2d/{kind}/sb-s0.h5" for kind in ("random", "hessian")]
    merged = [io.read_h5(path) for path in paths]
    merged_roughness = io.read_csv(measurements / "roughness/sb-s0.csv")
    assert merged[0][1]["parts"] == 2 and list(merged_roughness["direction"]) == [0, 1, 2]
    configfile = write_config(workdir, "one_part", {"figures.surface_2d.parts": 1},
                              as_smoke=True)
    snakemake(workdir, str(paths[0].relative_to(workdir)), "--configfile", configfile)
    for path, (merged_arrays, merged_attrs) in zip(paths, merged):
        whole, attrs = io.read_h5(path)
        assert attrs["parts"] == 1 and attrs["status"] == "ok" and attrs["run"] == "sb-s0"
        assert attrs["direction_kind"] == merged_attrs["direction_kind"]
        assert attrs["orientation"] == merged_attrs["orientation"]
        assert attrs["direction_seed"] == merged_attrs["direction_seed"] == 0   # the settings too
        assert whole.keys() == merged_arrays.keys()
        for name in merged_arrays:
            np.testing.assert_allclose(whole[name], merged_arrays[name], rtol=1e-6, atol=1e-6)
    roughness = io.read_csv(measurements / "roughness/sb-s0.csv")
    pd.testing.assert_frame_equal(roughness, merged_roughness, rtol=1e-6, atol=1e-6)
