"""The pip lock and the conda env file pin the same versions."""

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
    lock = _pins((ROOT / "envs/requirements.txt").read_text().splitlines())
    env = yaml.safe_load((ROOT / "envs/lossatlas.yaml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda_pins = _pins(pip_section)
    assert conda_pins, "envs/lossatlas.yaml pins nothing"
    for name, version in conda_pins.items():
        assert lock.get(name) == version, f"{name}: conda {version}, pip lock {lock.get(name)}"
    for required in ("torch", "torchvision", "snakemake", "pandas", "seaborn", "h5py", "mnist1d"):
        assert required in conda_pins


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
