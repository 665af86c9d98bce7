"""The claims_by_scale figure: threshold parsing, the failing claims' checks at every scale."""

import math

import pandas as pd
import pytest

from lossatlas.claims import claim_row
from lossatlas.plots import save_figure
from lossatlas.plots.scales import (
    claims_by_scale_table,
    parameter_count,
    plot_claims_by_scale,
    threshold_lines,
)

SMALL, LARGE = "mlp width=100, D = 15210", "mlp width=200, D = 50410"


@pytest.mark.parametrize("text, lines", [
    ("> 1", [1.0]), ("≥ 0.5", [0.5]), ("< 0.1 for every curve kind", [0.1]), ("= 1", [1.0]),
    ("< −0.02", [-0.02]), ("within ±1", [-1.0, 1.0]), ("within 1 ± 0.2", [0.8, 1.2]),
    ("strictly inside (0.1, 10)", []), ("complex < 0.1 < linear simplex", []),
])
def test_threshold_lines(text, lines):
    assert threshold_lines(text) == pytest.approx(lines)


def test_parameter_count_of_a_scale_label():
    assert parameter_count(LARGE) == 50410 and math.isnan(parameter_count("mlp"))


def _gathered(rows):
    return pd.DataFrame([{**claim_row(*row[:-1]), "scale": row[-1]} for row in rows])


def test_claims_by_scale_keeps_the_claims_failing_at_the_own_scale_at_every_scale(tmp_path):
    claims = _gathered([
        ("W", "fig", "holds here", "s", 2.0, "> 1", True, SMALL),
        ("W", "fig", "holds here", "s", 0.5, "> 1", False, LARGE),
        ("W", "fig", "fails here", "s", 0.5, "> 1", False, SMALL),
        ("W", "fig", "fails here", "s", 1.5, "> 1", True, LARGE),
        ("W", "other", "only here", "s", None, "≥ 0.5", None, "no run", SMALL),
    ])
    table = claims_by_scale_table(claims, SMALL)
    assert table["claim"].tolist() == ["fails here", "fails here", "only here"]
    assert table["parameters"].tolist()[:2] == [15210, 50410]
    assert table["verdict"].tolist() == ["does not hold", "holds", "inconclusive"]
    assert table["measured_at"].tolist() == [2, 2, 1]
    figure = plot_claims_by_scale(table)
    assert len([ax for ax in figure.axes if ax.axison]) == 2
    assert "one scale only" in figure.axes[1].get_title()
    assert [line.get_ydata()[0] for line in figure.axes[0].get_lines()
            if line.get_linestyle() == "--"] == [1.0]
    save_figure(figure, tmp_path / "s.pdf", tmp_path / "s.png")
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
