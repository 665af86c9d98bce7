"""The paper-shaped config (config/paper_shaped.yaml): the paper config's model family and rules on
generated CIFAR-shaped images, planned like the paper config and run end to end on the CPU."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from lossatlas import io
from lossatlas.plan import rule_family
from test_workflow import FIGURES, planned_jobs

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A copy of the workflow (Snakefile, workflow/, config/, envs/) to run in."""
    work = tmp_path_factory.mktemp("paper_shaped")
    shutil.copy(ROOT / "Snakefile", work / "Snakefile")
    for folder in ("workflow", "config", "envs"):
        shutil.copytree(ROOT / folder, work / folder)
    return work


def snakemake(workdir, *args):
    result = subprocess.run([SNAKEMAKE, *args], cwd=workdir, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    return result.stdout


def planned_families(dry_run_output):
    """Rule families (lossatlas.plan.rule_family) of the jobs of a dry run's job-stats table."""
    return {rule_family(rule) for rule in planned_jobs(dry_run_output)}


def test_paper_shaped_plans_every_rule_of_the_paper_config(workdir):
    paper = planned_families(snakemake(workdir, "-n", "--configfile", "config/paper.yaml"))
    shaped = planned_families(snakemake(workdir, "-n", "--configfile",
                                        "config/paper_shaped.yaml"))
    assert "train_batch" in paper and "measure_curvature_along" in paper
    assert paper == shaped


@pytest.mark.workflow
def test_paper_shaped_run_end_to_end(workdir):
    snakemake(workdir, "--profile", "workflow/profiles/ci", "--configfile",
              "config/paper_shaped.yaml")
    results = workdir / "results/paper_shaped"  # the config's own folder
    for figure in FIGURES:
        for ext in ("pdf", "png"):
            assert (results / f"figures/{figure}.{ext}").stat().st_size > 1000
    runs = results / "runs/gratings/resnet20"
    statuses = {run.name: json.loads((run / "status.json").read_text())["status"]
                for run in runs.iterdir()}
    assert len(statuses) == 28 and set(statuses.values()) == {"ok"}
    measurements = results / "measurements/gratings/resnet20"
    _, attrs = io.read_h5(measurements / "surface_2d/random/sb-s0.h5")
    assert attrs["bn_policy"] == "recompute" and attrs["status"] == "ok"
    _, attrs = io.read_h5(measurements / "goldilocks.h5")
    assert json.loads(attrs["model_knobs"])["norm"] == "none"
    cells = sorted(p.name for p in (measurements / "sweeps/taxonomy").glob("*.cells.csv"))
    assert cells == ["w2.p0.cells.csv", "w2.p1.cells.csv", "w4.p0.cells.csv", "w4.p1.cells.csv"]
    claims = pd.read_csv(results / "claims.csv", keep_default_na=False, na_values=[""])
    assert set(claims["figure"]) == {*FIGURES, "dataset_sanity"}
    assert (claims["config"] == "paper_shaped").all()
    mli = claims[claims["figure"] == "mli"]
    assert mli["reason"].fillna("").str.contains("has no run|no SGD run").sum() == 0
