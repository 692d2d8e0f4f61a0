"""Pixel-level metrics: golden reference numbers (paper protocol), scikit-learn on raw scores
(exact protocol), histogram accumulation (fixed and adaptive range), degenerate input."""
import numpy as np
import pytest
from sklearn.metrics import auc, average_precision_score, roc_auc_score, roc_curve

from src.pixel_metrics import (ScoreHistogram, best_f1_from_counts, exact_metrics, paper_metrics, pixel_scores,
                               roc_curve_from_counts)

GOLDEN_CASES = ["pixel_s01_laf_baseline", "pixel_s02_laf_trained", "pixel_s03_separated"]
IN, OUT, OTHER, VOID = 1, 2, 0, 255


@pytest.mark.parametrize("case", GOLDEN_CASES)
def test_paper_protocol_equals_golden(golden_dir, case):
    ref = np.load(golden_dir / f"{case}.npz")
    got = paper_metrics(ref["in"], ref["out"])
    for key in ("auroc", "fpr95", "auprc"):
        assert got[key] == pytest.approx(float(ref[key]), abs=1e-6), key


@pytest.mark.parametrize("case", GOLDEN_CASES)
def test_paper_roc_curve_equals_golden_points(golden_dir, case):
    # The reference's curve after drop_intermediate: the same points, so FPR95 picks the same one.
    ref = np.load(golden_dir / f"{case}.npz")
    rescaled = [np.floor(c / c.sum() * 1e5).astype(np.int64) for c in (ref["in"], ref["out"])]
    fpr, tpr = roc_curve_from_counts(*rescaled)
    np.testing.assert_allclose(fpr, ref["roc_fpr"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(tpr, ref["roc_tpr"], rtol=0, atol=1e-12)


def test_paper_fpr95_uses_the_curve_after_collinear_points_are_dropped():
    # In: 1000 per bin in all 100 bins; out: 2000 per bin in bins 50..99. From the top, both rates
    # grow linearly down to bin 50, then only the FPR grows: sklearn keeps the points of bins 99,
    # 50 and 0 only, (0.01, 0.02), (0.5, 1), (1, 1). TPR closest to 0.95 is 1: FPR95 = 0.5 (all
    # points would give 0.48 at TPR 0.96). Same curve as sklearn on the expanded balanced samples.
    counts_in = np.full(100, 1000)
    counts_out = np.r_[np.zeros(50, np.int64), np.full(50, 2000)]
    got = paper_metrics(counts_in, counts_out)
    assert got["fpr95"] == 0.5
    scores = np.r_[np.repeat(np.arange(1, 101) / 100, counts_in), np.repeat(np.arange(1, 101) / 100, counts_out)]
    labels = np.r_[np.zeros(counts_in.sum()), np.ones(counts_out.sum())]
    fpr, tpr, _ = roc_curve(labels, scores)
    np.testing.assert_array_equal(fpr, [0.0, 0.01, 0.5, 1.0])
    np.testing.assert_array_equal(np.c_[fpr, tpr], np.c_[roc_curve_from_counts(counts_in, counts_out)])
    assert got["auroc"] == pytest.approx(auc(fpr, tpr), abs=1e-15)


# ---------------------------------------------------------------- exact protocol vs raw scores

def _fpr95_from_sorted_scores(scores_in, scores_out):
    """FPR at the first distinct threshold, from high to low, where TPR >= 0.95."""
    scores = np.concatenate([scores_in, scores_out]).astype(np.float64)
    is_out = np.concatenate([np.zeros(scores_in.size), np.ones(scores_out.size)])
    order = np.argsort(-scores, kind="stable")
    scores, is_out = scores[order], is_out[order]
    group_ends = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1]
    tps, fps = np.cumsum(is_out)[group_ends], np.cumsum(1 - is_out)[group_ends]
    first = np.argmax(tps / tps[-1] >= 0.95)
    return fps[first] / fps[-1]


def _sklearn(scores_in, scores_out):
    scores = np.concatenate([scores_in, scores_out])
    labels = np.concatenate([np.zeros(scores_in.size), np.ones(scores_out.size)])
    return roc_auc_score(labels, scores), average_precision_score(labels, scores)


def _histogram_of(scores_in, scores_out, bins, images):
    """Accumulates the scores over `images` pieces, with void and other-id pixels mixed in."""
    rng = np.random.default_rng(7)
    noise = rng.random(scores_in.size // 4).astype(scores_in.dtype) * 1e3  # outside any range: must be ignored
    scores = np.concatenate([scores_in, scores_out, noise])
    gt = np.concatenate([np.full(scores_in.size, IN), np.full(scores_out.size, OUT),
                         rng.choice([OTHER, VOID], noise.size)]).astype(np.uint8)
    hist = ScoreHistogram(bins)
    for piece in np.array_split(rng.permutation(scores.size), images):
        hist.update(scores[piece].reshape(1, -1), gt[piece].reshape(1, -1), IN, OUT)
    return hist


def _distribution(name, rng):
    """(in, out) raw scores in [0, 1]; exactly tied values in the discrete cases."""
    if name == "beta":
        return rng.beta(2, 5, 200_000).astype(np.float32), rng.beta(5, 2, 20_000).astype(np.float32)
    if name == "overlapping":
        return rng.beta(2, 2, 200_000), rng.beta(2.5, 2, 20_000)
    if name == "discrete_sevenths":
        return (rng.integers(0, 8, 100_000) / 7).astype(np.float32), (rng.integers(2, 8, 10_000) / 7).astype(np.float32)
    if name == "on_edges_of_100_bins":
        return rng.integers(0, 101, 100_000) / 100, rng.integers(30, 101, 10_000) / 100
    if name == "on_edges_of_1e4_bins":
        return rng.integers(0, 10_001, 100_000) / 1e4, rng.integers(3_000, 10_001, 10_000) / 1e4
    raise KeyError(name)


@pytest.mark.parametrize("name, bins, fpr95_exact", [
    ("beta", 100_000, False),
    ("overlapping", 100_000, False),
    ("beta", 10_000, False),
    ("discrete_sevenths", 10_000, True),
    ("on_edges_of_100_bins", 100, True),
    ("on_edges_of_1e4_bins", 10_000, True),
])
def test_exact_protocol_matches_sklearn_on_raw_scores(name, bins, fpr95_exact):
    scores_in, scores_out = _distribution(name, np.random.default_rng(0))
    hist = _histogram_of(scores_in, scores_out, bins, images=3)
    got = exact_metrics(hist.counts_in, hist.counts_out)
    auroc, auprc = _sklearn(scores_in, scores_out)
    assert got["auroc"] == pytest.approx(auroc, abs=1e-4)
    assert got["auprc"] == pytest.approx(auprc, abs=1e-4)
    raw_fpr95 = _fpr95_from_sorted_scores(scores_in, scores_out)
    if fpr95_exact:
        # Every distinct score has its own bin: the thresholds are the raw ones.
        assert got["fpr95"] == pytest.approx(raw_fpr95, abs=1e-12)
    else:
        # The raw threshold lies inside the histogram's threshold bin, so the histogram counts at
        # most that bin's in-distribution pixels more as false positives.
        one_bin = hist.counts_in.max() / hist.counts_in.sum()
        assert one_bin < 1e-3
        assert 0 <= got["fpr95"] - raw_fpr95 <= one_bin


def test_exact_protocol_on_separated_classes():
    hist = ScoreHistogram(1000)
    hist.update(np.array([[0.1, 0.2, 0.3, 0.8, 0.9]]), np.array([[IN, IN, IN, OUT, OUT]]), IN, OUT)
    assert exact_metrics(hist.counts_in, hist.counts_out) == {"auroc": 1.0, "fpr95": 0.0, "auprc": 1.0}


def test_exact_protocol_by_hand():
    # Scores (label): 0.9 (out), 0.7 (in), 0.7 (out), 0.2 (in); ties at 0.7.
    # Thresholds 0.9, 0.7, 0.2 give (FPR, TPR) = (0, 1/2), (1/2, 1), (1, 1) after (0, 0);
    # trapezoids: 0 + 1/2 * (1/2 + 1) / 2 + 1/2 * (1 + 1) / 2 = 3/8 + 1/2 = 7/8.
    # AP: recall 1/2 at precision 1, recall 1 at precision 2/3: 1/2 + 1/2 * 2/3 = 5/6.
    # FPR95: first threshold with TPR >= 0.95 is 0.7, FPR = 1/2.
    hist = ScoreHistogram(10)
    hist.update(np.array([0.95, 0.75, 0.75, 0.25]), np.array([OUT, IN, OUT, IN]), IN, OUT)
    got = exact_metrics(hist.counts_in, hist.counts_out)
    assert got == pytest.approx({"auroc": 7 / 8, "fpr95": 1 / 2, "auprc": 5 / 6}, abs=1e-15)


def test_best_f1_by_hand():
    # Bins (in, out) from low to high: (3, 0), (1, 1), (0, 2); N_out = 3. From the top:
    # bin 2: TP 2, FP 0 -> 4 / (2 + 0 + 3) = 4/5; bin 1: TP 3, FP 1 -> 6 / 7; bin 0: 6 / 10.
    assert best_f1_from_counts([3, 1, 0], [0, 1, 2]) == pytest.approx((6 / 7, 1), abs=1e-15)
    # Equal F1 at bin 2 (TP 1, FP 0: 2 / 3) and bin 1 (TP 2, FP 2: 4 / 6): the higher bin wins.
    assert best_f1_from_counts([5, 2, 0], [0, 1, 1]) == (2 / 3, 2)
    assert best_f1_from_counts([1, 1, 0], [0, 0, 1]) == (1.0, 2)
    # No in-distribution pixel: all OoD (bin 0) is perfect.
    assert best_f1_from_counts([0, 0], [1, 1]) == (1.0, 0)
    with pytest.raises(ValueError, match="no OoD pixel"):
        best_f1_from_counts([1, 1], [0, 0])


# ---------------------------------------------------------------- histogram accumulation

def test_histogram_counts_only_in_and_out_pixels_like_np_histogram():
    rng = np.random.default_rng(3)
    score = rng.random((60, 80), dtype=np.float32)
    score[0, :5] = [0.0, 1.0, 0.5, 0.25, 0.01]  # on edges, including both ends of the range
    gt = rng.choice(np.array([IN, OUT, OTHER, VOID], np.uint8), size=score.shape)
    hist = ScoreHistogram(100)
    hist.update(score, gt, IN, OUT)
    hist.update(score[::-1], gt[::-1], IN, OUT)
    np.testing.assert_array_equal(hist.counts_in, 2 * np.histogram(score[gt == IN], 100, (0.0, 1.0))[0])
    np.testing.assert_array_equal(hist.counts_out, 2 * np.histogram(score[gt == OUT], 100, (0.0, 1.0))[0])
    assert hist.counts_in.sum() == 2 * np.count_nonzero(gt == IN)


@pytest.mark.parametrize("bad", [1.0001, -0.5, np.nan])
def test_score_outside_fixed_range_is_an_error_and_changes_nothing(bad):
    hist = ScoreHistogram(100)
    with pytest.raises(ValueError, match="outside the histogram range"):
        hist.update(np.array([[0.2, bad]], np.float32), np.array([[IN, OUT]]), IN, OUT)
    assert hist.counts_in.sum() == hist.counts_out.sum() == 0


def test_score_outside_range_on_excluded_pixels_is_ignored():
    hist = ScoreHistogram(100)
    hist.update(np.array([[0.2, 7.0, 0.9]]), np.array([[IN, VOID, OUT]]), IN, OUT)
    assert hist.counts_in.sum() == hist.counts_out.sum() == 1


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="same shape"):
        ScoreHistogram(100).update(np.zeros((4, 5)), np.zeros((5, 4)), IN, OUT)


def test_adaptive_grid_equals_final_grid_and_sklearn():
    # An energy-like score whose range grows from image to image: the window moves and coarsens.
    rng = np.random.default_rng(5)
    hist = ScoreHistogram(100_000, value_range=None)
    all_in, all_out = [], []
    for image in range(6):
        spread = 0.01 * 4.0 ** image
        scores_in = (rng.normal(-12.0, spread, 20_000)).astype(np.float32)
        scores_out = (rng.normal(-12.0 + spread, spread, 2_000)).astype(np.float32)
        score = np.concatenate([scores_in, scores_out, [1e6, -1e6]]).astype(np.float32)[None]
        gt = np.concatenate([np.full(scores_in.size, IN), np.full(scores_out.size, OUT), [VOID, OTHER]])[None]
        hist.update(score, gt, IN, OUT)
        all_in.append(scores_in)
        all_out.append(scores_out)
    all_in, all_out = np.concatenate(all_in), np.concatenate(all_out)
    np.testing.assert_array_equal(hist.counts_in, np.histogram(all_in, bins=hist.edges)[0])
    np.testing.assert_array_equal(hist.counts_out, np.histogram(all_out, bins=hist.edges)[0])
    span = max(all_in.max(), all_out.max()) - min(all_in.min(), all_out.min())
    assert hist.edges[1] - hist.edges[0] < 2 * span / (hist.bins - 1)
    got = exact_metrics(hist.counts_in, hist.counts_out)
    auroc, auprc = _sklearn(all_in, all_out)
    assert got["auroc"] == pytest.approx(auroc, abs=1e-4)
    assert got["auprc"] == pytest.approx(auprc, abs=1e-4)


def test_adaptive_grid_moves_down_and_up():
    # Disjoint ranges: below everything seen, then above it.
    hist = ScoreHistogram(10_000, value_range=None)
    pieces = [np.linspace(10.0, 20.0, 301), np.linspace(-1.0, -0.9, 301), np.linspace(100.0, 100.2, 301)]
    for piece in pieces:
        hist.update(piece, np.arange(piece.size) % 3 + 1, IN, OUT)  # ids 1 (in), 2 (out), 3 (other)
    everything = np.concatenate(pieces)
    ids = np.concatenate([np.arange(p.size) % 3 + 1 for p in pieces])
    np.testing.assert_array_equal(hist.counts_in, np.histogram(everything[ids == IN], bins=hist.edges)[0])
    np.testing.assert_array_equal(hist.counts_out, np.histogram(everything[ids == OUT], bins=hist.edges)[0])


def test_adaptive_grid_after_a_constant_first_image():
    hist = ScoreHistogram(1000, value_range=None)
    hist.update(np.full((2, 3), -5.0), np.full((2, 3), IN), IN, OUT)
    hist.update(np.array([[-40.0, 3.0, 250.0]]), np.array([[IN, OUT, OUT]]), IN, OUT)
    edges = hist.edges
    np.testing.assert_array_equal(hist.counts_in, np.histogram([-5.0] * 6 + [-40.0], bins=edges)[0])
    np.testing.assert_array_equal(hist.counts_out, np.histogram([3.0, 250.0], bins=edges)[0])
    assert exact_metrics(hist.counts_in, hist.counts_out)["auroc"] == 1.0


def test_adaptive_grid_rejects_non_finite_scores():
    with pytest.raises(ValueError, match="finite"):
        ScoreHistogram(100, value_range=None).update(np.array([[1.0, np.inf]]), np.array([[IN, OUT]]), IN, OUT)


# ---------------------------------------------------------------- degenerate input

@pytest.mark.parametrize("metrics", [paper_metrics, exact_metrics])
def test_missing_class_is_an_error(metrics):
    counts = np.arange(100)
    with pytest.raises(ValueError, match="no OoD pixel"):
        metrics(counts, np.zeros(100, np.int64))
    with pytest.raises(ValueError, match="no in-distribution pixel"):
        metrics(np.zeros(100, np.int64), counts)


def test_paper_protocol_needs_enough_ood_pixels_for_its_rescaling():
    counts_in = np.full(100, 10**9)
    counts_out = np.zeros(100, np.int64)
    counts_out[99] = 1  # r_out = 1e-11: floor(1 * 1e7 * r_out) = 0 samples
    with pytest.raises(ValueError, match="paper protocol.*no OoD pixel"):
        paper_metrics(counts_in, counts_out)


def test_count_arrays_of_different_length_are_an_error():
    with pytest.raises(ValueError, match="equal length"):
        exact_metrics(np.ones(10), np.ones(11))


@pytest.mark.parametrize("value_range", [(0.0, 1.0), None])
def test_image_shares_added_later_give_the_counts_of_the_pixels(value_range):
    """As the evaluation adds the shares the prepare stage kept: each image's share taken alone (by
    another histogram), then added in image order; an unbounded score's window moves and coarsens,
    also by images close to a power of two times the bins, where its exponent is tightest."""
    rng = np.random.default_rng(11)
    bins = 1000
    direct, merged = ScoreHistogram(bins, value_range), ScoreHistogram(bins, value_range)
    pieces = []
    for image in range(40):
        if value_range:
            scores = rng.beta(2, 5, 3000).astype(np.float32)
        else:
            centre = rng.choice([-1, 1]) * float(np.ldexp(bins, int(rng.integers(-30, 30)))) * (1 - 2.0 ** -20)
            scores = (centre + rng.normal(0, 1, 3000) * abs(centre) * 10.0 ** rng.integers(-8, 1)).astype(np.float32)
        ids = rng.choice([IN, OUT, VOID], scores.size).astype(np.uint8)
        values = pixel_scores(scores, ids, IN, OUT)
        direct.add(*values)
        merged.add_image(ScoreHistogram(bins, value_range).image_histogram(*values))
        pieces.append((scores, ids))
    np.testing.assert_array_equal(merged.edges, direct.edges)
    scores, ids = (np.concatenate(p) for p in zip(*pieces))
    # np.histogram's own bins: of the range for a bounded score, of the final edges for an unbounded one
    grid = dict(bins=bins, range=value_range) if value_range else dict(bins=merged.edges)
    for counts, pixel_id in ((merged.counts_in, IN), (merged.counts_out, OUT)):
        np.testing.assert_array_equal(counts, np.histogram(scores[ids == pixel_id], **grid)[0])
    np.testing.assert_array_equal(merged.counts_in, direct.counts_in)


def test_an_image_share_of_other_bins_is_refused():
    values = np.linspace(0.0, 1.0, 50, dtype=np.float32), np.zeros(0, np.float32)
    with pytest.raises(ValueError, match=r"image histogram of \(10,\) and \(10,\) counts for a histogram of 100 bins"):
        ScoreHistogram(100).add_image(ScoreHistogram(10).image_histogram(*values))
    coarse = ScoreHistogram(10, value_range=None).image_histogram(*values)
    with pytest.raises(ValueError, match="coarser than the histogram's"):
        ScoreHistogram(1000, value_range=None).add_image(coarse)


@pytest.mark.parametrize("dtype, bins", [(np.float32, 10000), (np.float32, 300), (np.float64, 1000),
                                         (np.float64, 10000), (np.float32, 150)])
def test_a_coarser_share_from_a_finer_one_is_the_share_of_the_scores(dtype, bins):
    """The paper protocol's share from the exact protocol's bins: equal to its own pass over the scores,
    also for scores on and next to every edge; None where the grids do not nest (then it is computed)."""
    rng = np.random.default_rng(3)
    edges = np.histogram_bin_edges(np.empty(0, dtype), bins=bins, range=(0.0, 1.0))
    near = np.concatenate([np.nextafter(edges, -1), edges, np.nextafter(edges, 2)]).astype(dtype)
    values = [np.clip(np.concatenate([near, rng.random(5000)]), 0, 1).astype(dtype), rng.random(300).astype(dtype)]
    paper, finer = ScoreHistogram(100), ScoreHistogram(bins)
    share = paper.share_from(finer, finer.image_histogram(*values), dtype)
    nests = bins % 100 == 0 and np.array_equal(edges[::bins // 100],
                                               np.histogram_bin_edges(np.empty(0, dtype), bins=100, range=(0.0, 1.0)))
    assert (share is not None) == nests
    if share is not None:
        for got, expected in zip(share[:2], paper.image_histogram(*values)[:2]):
            np.testing.assert_array_equal(got, expected)
