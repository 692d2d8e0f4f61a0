"""Evaluation figures: PNG files of the fixed pixel size, written atomically, no pyplot state and
no figure left alive, segment colours by meta classifier decision, clear errors for bad input."""
import gc
import subprocess
import sys
import weakref

import numpy as np
import pytest
from PIL import Image

from src import plots
from src.pixel_metrics import ScoreHistogram
from tests.conftest import REPO

IN, OUT, VOID = 1, 2, 255
H, W = 64, 128


def _size(inches):
    return round(inches[0] * plots.DPI), round(inches[1] * plots.DPI)


def _png(path):
    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"))


def _pixels_of(png, colour):
    return int(np.all(png == np.round(plots._rgb(colour) * 255).astype(np.uint8), axis=2).sum())


def _scene(seed):
    """Image, ground truth, entropy-like score, components (+k interior, -k boundary) of 3 segments."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    gt = np.full((H, W), VOID, np.uint8)
    gt[H // 2:] = IN
    gt[40:52, 20:36] = OUT
    score = rng.random((H, W)).astype(np.float32) * 0.4
    components = np.zeros((H, W), np.int32)
    for k, (top, left) in enumerate([(38, 18), (44, 70), (50, 100)], start=1):
        score[top:top + 10, left:left + 14] = 0.9
        components[top:top + 10, left:left + 14] = -k
        components[top + 1:top + 9, left + 1:left + 13] = k
    return image, gt, score, components


def _histograms(seed):
    rng = np.random.default_rng(seed)
    histogram = ScoreHistogram(50)
    histogram.add(rng.beta(1, 6, 5000), rng.beta(4, 2, 400))
    return histogram.edges, histogram.counts_in, histogram.counts_out


@pytest.mark.parametrize("seed", [0, 1])
def test_image_panel_is_a_png_of_the_fixed_size(tmp_path, seed):
    image, gt, score, components = _scene(seed)
    path = tmp_path / "panel.png"
    plots.plot_image_panel(path, image, gt, IN, OUT, score, components, {2}, f"scene {seed}")
    assert _png(path).shape[1::-1] == _size(plots.PANEL_SIZE)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["panel.png"]


def test_image_panel_without_segments_and_of_an_unbounded_score(tmp_path):
    image, gt, score, _ = _scene(2)
    path = tmp_path / "empty.png"
    plots.plot_image_panel(path, image, gt, IN, OUT, -20 * score, np.zeros((H, W), np.int16), [], "no segment",
                           score_range=None)
    png = _png(path)
    assert png.shape[1::-1] == _size(plots.PANEL_SIZE)
    # Legend patches only (equal up to their placement on the pixel grid): no segment painted.
    kept, removed = _pixels_of(png, plots.KEPT_COLOUR), _pixels_of(png, plots.REMOVED_COLOUR)
    assert kept > 0 and kept == pytest.approx(removed, rel=0.1)


def test_removed_segments_change_colour(tmp_path):
    image, gt, score, components = _scene(3)
    counts = {}
    for removed in ([], [1, 3]):
        path = tmp_path / f"removed{len(removed)}.png"
        plots.plot_image_panel(path, image, gt, IN, OUT, score, components, np.array(removed), "scene")
        png = _png(path)
        counts[len(removed)] = _pixels_of(png, plots.KEPT_COLOUR), _pixels_of(png, plots.REMOVED_COLOUR)
    (kept_all, removed_none), (kept_one, removed_two) = counts[0], counts[2]
    # Boundaries are opaque, so their exact colour moves from kept to removed, two segments' worth.
    assert removed_two > removed_none and kept_one < kept_all
    assert removed_two - removed_none == pytest.approx(kept_all - kept_one, rel=0.1)


def test_image_panel_rejects_bad_input(tmp_path):
    image, gt, score, components = _scene(4)
    path = tmp_path / "bad.png"
    with pytest.raises(ValueError, match=r"removed segment ids \[4, 7\] are not in the components map"):
        plots.plot_image_panel(path, image, gt, IN, OUT, score, components, {1, 4, 7}, "t")
    with pytest.raises(ValueError, match="score map of shape"):
        plots.plot_image_panel(path, image, gt, IN, OUT, score[:, :-1], components, [], "t")
    with pytest.raises(ValueError, match="image: expected a uint8 RGB array"):
        plots.plot_image_panel(path, image.astype(np.float32), gt, IN, OUT, score, components, [], "t")
    assert list(tmp_path.iterdir()) == []


def test_score_histograms(tmp_path):
    path = tmp_path / "sub" / "histograms.png"
    plots.plot_score_histograms(path, {"baseline": _histograms(0), "entropy training": _histograms(1)}, "entropy")
    assert _png(path).shape[1::-1] == _size(plots.HISTOGRAMS_SIZE)
    unbounded = ScoreHistogram(200, value_range=None)
    unbounded.add(np.random.default_rng(2).normal(-8, 1, 1000), np.random.default_rng(3).normal(-3, 1, 100))
    plots.plot_score_histograms(path, {"baseline": (unbounded.edges, unbounded.counts_in, unbounded.counts_out)},
                                "maxlogit", xlabel="max logit")
    assert _png(path).shape[1::-1] == _size(plots.HISTOGRAMS_SIZE)
    assert [p.name for p in path.parent.iterdir()] == ["histograms.png"]


def test_score_histograms_reject_bad_input(tmp_path):
    edges, counts_in, counts_out = _histograms(0)
    path = tmp_path / "h.png"
    with pytest.raises(ValueError, match="expected bins \\+ 1 edges"):
        plots.plot_score_histograms(path, {"run": (edges[:-1], counts_in, counts_out)}, "t")
    with pytest.raises(ValueError, match="no OoD pixel counted"):
        plots.plot_score_histograms(path, {"run": (edges, counts_in, 0 * counts_out)}, "t")
    with pytest.raises(ValueError, match="expected 1 to 4 runs"):
        plots.plot_score_histograms(path, {str(i): (edges, counts_in, counts_out) for i in range(5)}, "t")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("protocol", ["paper", "exact"])
def test_roc_pr(tmp_path, protocol):
    curves = {label: _histograms(seed)[1:] for label, seed in (("baseline", 0), ("entropy training", 1))}
    path = tmp_path / "curves.png"
    plots.plot_roc_pr(path, curves, "entropy", protocol=protocol)
    assert _png(path).shape[1::-1] == _size(plots.CURVES_SIZE)
    assert [p.name for p in tmp_path.iterdir()] == ["curves.png"]


def test_roc_pr_rejects_unknown_protocol_and_one_class(tmp_path):
    counts_in, counts_out = _histograms(0)[1:]
    with pytest.raises(ValueError, match="unknown metrics protocol 'sklearn'"):
        plots.plot_roc_pr(tmp_path / "c.png", {"run": (counts_in, counts_out)}, "t", protocol="sklearn")
    with pytest.raises(ValueError, match="no OoD pixel"):
        plots.plot_roc_pr(tmp_path / "c.png", {"run": (counts_in, 0 * counts_out)}, "t")
    assert list(tmp_path.iterdir()) == []


def test_no_figure_outlives_its_file(tmp_path, monkeypatch):
    alive = []

    def tracked(size):
        figure = make_figure(size)
        alive.append(weakref.ref(figure))
        return figure

    make_figure = plots._figure
    monkeypatch.setattr(plots, "_figure", tracked)
    image, gt, score, components = _scene(5)
    for i in range(3):
        plots.plot_image_panel(tmp_path / f"{i}.png", image, gt, IN, OUT, score, components, [], "t")
    plots.plot_score_histograms(tmp_path / "h.png", {"run": _histograms(0)}, "t")
    plots.plot_roc_pr(tmp_path / "c.png", {"run": _histograms(0)[1:]}, "t")
    gc.collect()
    assert len(alive) == 5 and all(ref() is None for ref in alive)


def test_no_pyplot_and_no_screen():
    # A fresh interpreter: pyplot imported anywhere else in the test session would hide it here.
    code = ("import sys, tempfile, numpy as np\n"
            "from src import plots\n"
            "edges, counts = np.linspace(0, 1, 5), np.array([5, 3, 1, 1])\n"
            "plots.plot_score_histograms(tempfile.mkdtemp() + '/h.png', {'r': (edges, counts, counts[::-1])}, 't')\n"
            "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot was imported'\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin", "MPLBACKEND": "", "DISPLAY": ""})
    assert result.returncode == 0, result.stderr


def test_fine_histograms_are_drawn_with_summed_neighbour_bins():
    from src.plots import DISPLAY_BINS, _coarse
    for bins in (10_000, 1_050, 60):
        edges = np.linspace(-2.0, 3.0, bins + 1)
        counts_in, counts_out = np.arange(bins), np.ones(bins, np.int64)
        coarse_edges, coarse_in, coarse_out = _coarse(edges, counts_in, counts_out)
        assert len(coarse_in) <= DISPLAY_BINS and len(coarse_edges) == len(coarse_in) + 1
        assert coarse_in.sum() == counts_in.sum() and coarse_out.sum() == bins
        np.testing.assert_allclose(np.diff(coarse_edges), np.diff(coarse_edges)[0])
        assert coarse_edges[0] == -2.0 and coarse_edges[-1] >= 3.0 - 1e-12
