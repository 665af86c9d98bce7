"""The report's texts: every figure caption and the home page render, under every shipped config,
as Snakemake renders them (Jinja with its settings, then docutils) without a docutils message or a
Python repr of a config value. The built report itself is checked after the smoke run
(tests/test_workflow.py)."""

from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from docutils.core import publish_parts
from jinja2 import Environment
from snakemake.utils import validate

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "workflow/report"
CONFIGS = sorted((ROOT / "config").glob("*.yaml"))


def render(rst: Path, config: dict, tmp_path: Path, files=()) -> str:
    """``rst`` as the report shows it: Jinja as Snakemake's report sets it up, then docutils HTML
    with every message, down to info, written into the output."""
    claims = tmp_path / "figure.html"
    claims.write_text("<ul><li>claim</li></ul>")
    snakemake = SimpleNamespace(
        config=config, output=SimpleNamespace(claims_html=str(claims)),
        params=SimpleNamespace(thresholds=config["figures"]["taxonomy_phases"]))
    text = Environment(trim_blocks=True, lstrip_blocks=True).from_string(rst.read_text()).render(
        snakemake=snakemake, categories={}, files=list(files))
    return publish_parts(text, writer_name="html", settings_overrides={"report_level": 1})["body"]


@pytest.fixture(params=CONFIGS, ids=lambda path: path.stem)
def config(request):
    config = yaml.safe_load(request.param.read_text())
    validate(config, str(ROOT / "workflow/schemas/config.schema.yaml"), set_default=True)
    return config


def test_every_caption_renders_without_messages_or_reprs(config, tmp_path):
    for rst in sorted(REPORT.glob("*.rst")):
        page = render(rst, config, tmp_path)
        assert "system-message" not in page, f"{rst.name}:\n{page}"
        assert "{'" not in page and "['" not in page, f"{rst.name} prints a Python repr:\n{page}"


def test_home_page_embeds_the_claims_table_only_when_the_report_holds_it(config, tmp_path):
    (tmp_path / "claims_table.html").write_text('<div class="claims-table">table</div>')
    gathered = SimpleNamespace(target="claims.html", path=tmp_path / "claims.html")
    home = render(REPORT / "workflow.rst", config, tmp_path, files=[gathered])
    assert '<div class="claims-table">table</div>' in home and "system-message" not in home
    partial = render(REPORT / "workflow.rst", config, tmp_path)
    assert "claims-table" not in partial and "snakemake claims" in partial
