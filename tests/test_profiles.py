"""Snakemake profiles: what the Slurm profile asks of a cluster for each rule."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SLURM = yaml.safe_load((ROOT / "workflow/profiles/slurm/config.yaml").read_text())


def rule_blocks():
    """Rule name -> its text, for every rule of the workflow (also one defined under a condition,
    indented)."""
    blocks = {}
    for smk in sorted((ROOT / "workflow/rules").glob("*.smk")):
        parts = re.split(r"^ *rule (\w+):\n", smk.read_text(), flags=re.M)
        blocks.update(zip(parts[1::2], parts[2::2]))
    return blocks


def test_slurm_profile_sizes_the_rules_that_compute():
    rules = rule_blocks()
    sized = SLURM["set-resources"]
    assert set(sized) <= set(rules), f"unknown rules: {set(sized) - set(rules)}"
    gpu_rules = {name for name, text in rules.items() if "gpu=" in text}
    assert gpu_rules and gpu_rules <= set(sized), f"unsized: {gpu_rules - set(sized)}"
    for name in gpu_rules:
        assert sized[name]["runtime"] >= 30 and sized[name]["mem_mb"] >= 8000, name
    for name in rules:
        if name.startswith("plot_"):
            assert name not in sized, f"{name} should take the small defaults"
    defaults = SLURM["default-resources"]
    assert defaults["mem_mb"] <= 2000 and defaults["runtime"] <= 15
    assert "slurm_partition" not in defaults and "gpu" not in defaults


def test_dataset_is_prepared_on_the_submitting_machine():
    text = (ROOT / "workflow/rules/data.smk").read_text()
    assert re.search(r"^localrules:\n    prepare_dataset,$", text, flags=re.M)
