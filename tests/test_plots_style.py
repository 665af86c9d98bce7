"""The style every figure shares: titles wrapped to the figure's width, claim lines naming their
runs when they are few, plain log tick labels, one-file image writes."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from lossatlas.plots import (TITLE_CHARS_PER_INCH, add_title, claims_title, plain_log_labels,
                             save_image, wrap_title)


def claim(runs: str) -> dict:
    return {"run": "claim", "claim": "a claim", "verdict": "holds", "statistic": "ratio",
            "value": 2.0, "threshold": "> 1", "runs": runs}


def test_titles_are_wrapped_to_the_figure_width():
    text = " ".join(["word"] * 100) + "\nshort line"
    wrapped = wrap_title(text, width_inches=5)
    lines = wrapped.split("\n")
    assert max(len(line) for line in lines) <= int(5 * TITLE_CHARS_PER_INCH)
    assert lines[-1] == "short line" and wrapped.replace("\n", " ") == text.replace("\n", " ")


def test_add_title_keeps_the_figure_size_and_the_axes_below_the_title():
    figure, ax = plt.subplots(figsize=(4, 3))
    add_title(figure, "x " * 200)
    assert tuple(figure.get_size_inches()) == (4, 3)
    title_lines = figure._suptitle.get_text().count("\n") + 1
    assert title_lines > 1
    assert ax.get_position().y1 < 1 - title_lines * 8 * 1.3 / 72 / 3
    plt.close(figure)


def test_claim_lines_name_their_runs_only_when_few():
    table = pd.DataFrame([claim("sb-s0 lb-s0"), claim(" ".join(f"run{i}-s0" for i in range(20))),
                          {"run": "sb-s0"}])
    lines = claims_title(table).split("\n")
    assert lines == ["a claim [sb-s0 lb-s0]: holds (ratio = 2, threshold > 1)",
                     "a claim: holds (ratio = 2, threshold > 1)"]


def test_log_axes_label_ticks_as_plain_numbers():
    figure, ax = plt.subplots()
    ax.plot([1, 2], [0.5, 3.0])
    ax.set_yscale("log")
    plain_log_labels(ax.yaxis)
    figure.canvas.draw()
    labels = {label.get_text() for label in ax.get_yticklabels() if label.get_text()}
    assert "1" in labels and not any("10^" in label or "times" in label for label in labels)
    plt.close(figure)


@pytest.mark.parametrize("suffix, magic", [(".png", b"\x89PNG"), (".pdf", b"%PDF"),
                                           (".svg", b"<?xml")])
def test_save_image_writes_the_format_of_its_suffix(tmp_path, suffix, magic):
    figure, ax = plt.subplots()
    ax.plot(np.arange(3))
    save_image(figure, tmp_path / f"f{suffix}")
    assert (tmp_path / f"f{suffix}").read_bytes().startswith(magic)
    assert sorted(path.name for path in tmp_path.iterdir()) == [f"f{suffix}", f"f{suffix}.sha256"]
    plt.close(figure)
