"""Landscape figures: shapes of the figures, shared colour scales, surface orientation, exclusions."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.contour import QuadContourSet

from lossatlas.plots import save_figure
from lossatlas.plots.landscape import (MAX_PATH_LABELS, plot_mli, plot_sgd_walk, plot_surfaces_2d,
                                       plot_trajectory_pca, roughness_label)

XS = np.linspace(-1.0, 1.0, 7)
YS = np.linspace(-0.5, 0.5, 5)


def bowl(scale: float, x_only: bool = False) -> dict[str, np.ndarray]:
    """Quadratic bowl on the non-square 7 × 5 grid, arrays (5, 7) indexed [iy, ix], accuracies in
    percent."""
    grid_x, grid_y = np.meshgrid(XS, YS)
    loss = 0.01 + scale * (grid_x ** 2 + (0 if x_only else 3 * grid_y ** 2))
    acc = 100 * np.clip(1.0 - loss / loss.max(), 0.0, 1.0)
    return {"xcoordinates": XS, "ycoordinates": YS, "train_loss": loss, "train_acc": acc,
            "test_loss": 1.5 * loss, "test_acc": 0.9 * acc}


def contour_sets(ax) -> list[QuadContourSet]:
    return [artist for artist in ax.collections if isinstance(artist, QuadContourSet)]


def assert_png(path) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_surfaces_share_levels_and_colour_scale_across_solutions(tmp_path):
    figure = plot_surfaces_2d({"flat": bowl(1.0), "sharp": bowl(30.0)})
    assert len(figure.axes) == 2 * 3 + 1
    rows = [figure.axes[0:3], figure.axes[3:6]]
    filled = [contour_sets(row[1])[0] for row in rows]
    lines = [contour_sets(row[0])[0] for row in rows]
    np.testing.assert_array_equal(filled[0].levels, filled[1].levels)
    np.testing.assert_array_equal(lines[0].levels, lines[1].levels)
    assert filled[0].norm.vmin == filled[1].norm.vmin == pytest.approx(0.01)
    assert filled[0].norm.vmax == filled[1].norm.vmax == pytest.approx(0.01 + 30 * 1.75)
    ratios = filled[0].levels[1:] / filled[0].levels[:-1]
    np.testing.assert_allclose(ratios, ratios[0])
    # each 3D view spans its own surface (no clip), on the shared colour scale
    assert [row[2].get_zlim() for row in rows] == [pytest.approx((0.01, 0.01 + 1.75)),
                                                    pytest.approx((0.01, 0.01 + 30 * 1.75))]
    save_figure(figure, tmp_path / "surfaces.pdf", tmp_path / "surfaces.png")
    assert_png(tmp_path / "surfaces.png")


def test_surface_depending_on_x_only_gives_vertical_contour_lines():
    figure = plot_surfaces_2d({"x only": bowl(1.0, x_only=True)})
    lines = contour_sets(figure.axes[0])[0]
    segments = [segment for level in lines.allsegs for segment in level if len(segment)]
    assert segments
    for segment in segments:
        assert np.ptp(segment[:, 0]) < 1e-9
        assert np.ptp(segment[:, 1]) > 0.1
    plt.close(figure)


def test_surfaces_accuracy_metric_and_bad_inputs():
    figure = plot_surfaces_2d({"a": bowl(1.0), "b": bowl(2.0)}, metric="test_acc")
    filled = contour_sets(figure.axes[1])[0]
    np.testing.assert_allclose(np.diff(filled.levels), np.diff(filled.levels)[0])
    plt.close(figure)
    with pytest.raises(ValueError, match="metric 'loss'"):
        plot_surfaces_2d({"a": bowl(1.0)}, metric="loss")
    transposed = dict(bowl(1.0), train_loss=bowl(1.0)["train_loss"].T)
    with pytest.raises(ValueError, match="surface 'bad'.*shape \\(7, 5\\)"):
        plot_surfaces_2d({"bad": transposed})


def test_trajectory_pca_labels_axes_and_path(tmp_path):
    steps = np.linspace(0.0, 1.0, 31)
    radius = 0.9 * (1 - steps)
    path = np.stack([radius * np.cos(6 * steps), 0.4 * radius * np.sin(6 * steps)], axis=1)
    labels = [str(i) for i in range(len(steps))]
    figure = plot_trajectory_pca(bowl(2.0), path, labels, (0.625, 0.201))
    plot_ax = figure.axes[0]
    assert len(figure.axes) == 2
    assert plot_ax.get_xlabel() == "PC1 (62.5% of variance)"
    assert plot_ax.get_ylabel() == "PC2 (20.1% of variance)"
    annotations = [child.get_text() for child in plot_ax.texts if child.get_text() in labels]
    assert 2 < len(annotations) <= MAX_PATH_LABELS
    assert annotations[0] == "0" and annotations[-1] == "30"
    drawn = [line for line in plot_ax.lines if len(line.get_xdata()) == len(steps)]
    np.testing.assert_allclose(drawn[-1].get_xydata(), path)
    save_figure(figure, tmp_path / "pca.pdf", tmp_path / "pca.png")
    assert_png(tmp_path / "pca.png")
    with pytest.raises(ValueError, match="path_labels has 2 entries for 31"):
        plot_trajectory_pca(bowl(2.0), path, ["0", "1"], (0.6, 0.2))
    with pytest.raises(ValueError, match="path must have shape"):
        plot_trajectory_pca(bowl(2.0), path.T, labels, (0.6, 0.2))


def mli_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    alphas = np.linspace(0.0, 1.2, 13)
    runs = [("sgd-a", "sgd", "none", 0.1, 0.0, "ok", 3.0),
            ("sgd-b", "sgd", "none", 0.1, 0.3, "ok", 5.0),
            ("adam-a", "adam", "batch", 1e-3, 0.8, "ok", 80.0),
            ("adam-b", "adam", "batch", 1e-3, 0.0, "skipped: diverged", 0.0)]
    curves, metrics = [], []
    for run, optimizer, norm, lr, bump, status, distance in runs:
        group = f"{optimizer}/{norm}"
        loss = 2.3 * (1 - alphas) ** 2 + 0.05 + bump * np.exp(-((alphas - 0.3) / 0.1) ** 2)
        for split in ("train", "test"):
            curves += [{"run": run, "group": group, "optimizer": optimizer, "lr": lr, "norm": norm,
                        "alpha": a, "split": split, "loss": l, "accuracy": 0.5}
                       for a, l in zip(alphas, loss)]
        metrics.append({"run": run, "group": group, "optimizer": optimizer, "lr": lr, "norm": norm,
                        "batch_size": 64, "status": status, "delta": bump, "monotonic": bump == 0,
                        "distance": distance, "relative_distance": distance / 10})
    return pd.DataFrame(curves), pd.DataFrame(metrics)


def test_mli_excludes_skipped_runs_and_reports_non_monotonic_fraction(tmp_path):
    curves, metrics = mli_tables()
    figure = plot_mli(curves, metrics)
    curve_ax, delta_ax = figure.axes[:2]
    run_lines = [line for line in curve_ax.lines if len(line.get_xdata()) == 13]
    assert len(run_lines) == 3
    assert curve_ax.get_yscale() == "log"
    assert len(delta_ax.collections[0].get_offsets()) == 3
    assert delta_ax.get_xscale() == "log"
    texts = [text.get_text() for text in delta_ax.texts + figure.texts]
    assert any("sgd / none: 1/2" in t and "adam / batch: 1/1" in t for t in texts)
    assert any("adam-b (skipped: diverged)" in t for t in texts)
    save_figure(figure, tmp_path / "mli.pdf", tmp_path / "mli.png")
    assert_png(tmp_path / "mli.png")
    with pytest.raises(ValueError, match="metrics lacks columns \\['distance'\\]"):
        plot_mli(curves, metrics.drop(columns="distance"))


def zigzag_walk(segments: int) -> pd.DataFrame:
    """Iterates alternate between the two walls of a valley; the segment minimum is inside, except in
    the last segment whose loss decreases monotonically."""
    t = np.linspace(0.0, 1.0, 10)
    rows = []
    for segment in range(segments):
        loss = 0.5 + 2.0 * (t - 0.5) ** 2 if segment < segments - 1 else 1.0 - 0.5 * t
        rows += [{"segment": segment, "t": ti, "position": 100 + segment + ti, "loss": li,
                  "is_iterate": ti in (0.0, 1.0)} for ti, li in zip(t, loss)]
    return pd.DataFrame(rows)


def test_sgd_walk_marks_iterates_and_segment_minima(tmp_path):
    walk = zigzag_walk(4)
    figure = plot_sgd_walk(walk, interior_fraction=0.75)
    ax = figure.axes[0]
    assert len(figure.axes) == 1
    assert "75% of 4 segments" in ax.get_title()
    curve, iterates, minima = ax.lines
    assert len(curve.get_xdata()) == 40
    np.testing.assert_allclose(iterates.get_xdata(), [100, 101, 102, 103, 104])
    np.testing.assert_allclose(minima.get_xdata(), [100 + 4 / 9, 101 + 4 / 9, 102 + 4 / 9, 104])
    save_figure(figure, tmp_path / "walk.pdf", tmp_path / "walk.png")
    assert_png(tmp_path / "walk.png")
    with pytest.raises(ValueError, match="interior_fraction must be in \\[0, 1\\]"):
        plot_sgd_walk(walk, interior_fraction=75)


def test_roughness_label_says_why_the_index_is_zero():
    monotone = pd.DataFrame({"normalized_tv": [1.0, 1.0, 1.0], "roughness_index": 0.0})
    assert roughness_label(monotone) == "roughness index 0.000: all 3 profiles monotone each side"
    rough = pd.DataFrame({"normalized_tv": [1.0, 1.5, 2.0], "roughness_index": 0.27})
    assert roughness_label(rough) == ("roughness index 0.270 (2 of 3 profiles not monotone each "
                                      "side)")
