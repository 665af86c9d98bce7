"""The pip lock and the conda env file pin the same versions."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pins(lines):
    pins = {}
    for line in lines:
        line = line.strip()
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.lower().replace("_", "-")] = version
    return pins


def test_conda_env_matches_pip_lock():
    """Every pin of the lock is in the conda env's pip section, at the same version, and nothing
    else; Python is pinned to its patch version."""
    lock = _pins((ROOT / "envs/requirements.txt").read_text().splitlines())
    env = yaml.safe_load((ROOT / "envs/lossatlas.yaml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert _pins(pip_section) == lock
    assert len(pip_section) == len(lock), "the pip section holds more than the lock's pins"
    python = [d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python")]
    assert len(python) == 1 and re.fullmatch(r"python=3\.11\.\d+", python[0]), python


def test_conda_env_installs_the_project_from_where_snakemake_runs():
    """The env file names no path (Snakemake resolves none of them against the project); the
    post-deploy script installs the project from Snakemake's working directory."""
    text = (ROOT / "envs/lossatlas.yaml").read_text()
    assert "--editable" not in text and "-e " not in text
    script = (ROOT / "envs/lossatlas.post-deploy.sh").read_text()
    assert "pip install --no-deps --no-build-isolation --editable \"$PWD\"" in script
    assert "pyproject.toml" in script


def test_every_lock_line_is_an_exact_pin():
    for line in (ROOT / "envs/requirements.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            assert "==" in line, f"unpinned requirement: {line}"
    lock = _pins((ROOT / "envs/requirements.txt").read_text().splitlines())
    assert lock["torch"] == "2.14.1" and lock["torchvision"] == "0.29.1"


def test_every_rule_uses_the_pinned_env():
    for smk in sorted((ROOT / "workflow/rules").glob("*.smk")):
        text = smk.read_text()
        rules_with_script = text.count("script:")
        assert text.count('"../../envs/lossatlas.yaml"') == rules_with_script, smk.name
