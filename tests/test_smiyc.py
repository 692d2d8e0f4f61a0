"""SegmentMeIfYouCan metrics: hand-built frames whose components are worked out below, and the
pixel metrics against scikit-learn on the concatenated float16 scores.

Hand-built frames score 1 on the predicted boxes and 0 elsewhere; each has far more in-distribution
pixels than anything else, so the best-F1 threshold is 1 (asserted) and the prediction is the boxes.
"""
import math

import numpy as np
import pytest
from scipy import ndimage
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_curve

from src.errors import MetaOodError
from src.smiyc import THRESHOLDS, TRACKS, float16_edge, smiyc_metrics

SHAPE = (100, 600)


def _frame(gt=(), pred=(), void=(), shape=SHAPE):
    """(float32 scores, uint8 labels); boxes (row0, row1, col0, col1), ends exclusive; void last."""
    scores, labels = np.zeros(shape, np.float32), np.zeros(shape, np.uint8)
    for r0, r1, c0, c1 in pred:
        scores[r0:r1, c0:c1] = 1.0
    for r0, r1, c0, c1 in gt:
        labels[r0:r1, c0:c1] = 1
    for r0, r1, c0, c1 in void:
        labels[r0:r1, c0:c1] = 255
    return scores, labels


def _metrics(frames, track="anomaly"):
    got = smiyc_metrics([s for s, _ in frames], [label for _, label in frames], track)
    assert got["best_f1_threshold"] == 1.0
    return got


def _assert_components(got, siou_gt, ppv, f1):
    assert got["siou_gt"] == pytest.approx(siou_gt, rel=1e-15)
    assert got["ppv"] == pytest.approx(ppv, rel=1e-15)
    np.testing.assert_allclose(got["f1"], f1, rtol=1e-15)
    assert got["mean_f1"] == pytest.approx(np.mean(f1), rel=1e-15)


GOOD = (10, 30, 10, 40)  # a 600-pixel box, ground truth and prediction both in some frames below


@pytest.mark.parametrize("track, pixels, kept", [
    ("anomaly", 499, False), ("anomaly", 500, True), ("obstacle", 49, False), ("obstacle", 50, True)])
def test_predicted_components_below_the_track_size_are_removed(track, pixels, kept):
    # A perfect detection (sIoU 1, PPV 1) and a 1-row strip of `pixels` on no object: if kept, a FP
    # with PPV 0 at every τ: F1 = 2 / (2 + 0 + 1), mean PPV 1/2.
    got = _metrics([_frame(gt=[GOOD], pred=[GOOD, (80, 81, 0, pixels)])], track)
    _assert_components(got, 1.0, 0.5 if kept else 1.0, [2 / 3 if kept else 1.0] * 11)


@pytest.mark.parametrize("track, pixels, kept, siou_gt, ppv", [
    # kept: A = `pixels`, B = 200 px, both inside the 2400-px P: off-gt part of P = 2400 - 200 - pixels
    # = 2100 (anomaly) / 2190 (obstacle); sIoU(A) = pixels / (pixels + off), sIoU(B) = 200 / (200 + off),
    # PPV = (200 + pixels) / 2400.
    ("anomaly", 100, True, (100 / 2200 + 200 / 2300) / 2, 300 / 2400),
    ("obstacle", 10, True, (10 / 2200 + 200 / 2390) / 2, 210 / 2400),
    # void: A leaves the region of interest, P counts 2400 - pixels there: sIoU(B) = PPV = 200 / (2400 - pixels).
    ("anomaly", 99, False, 200 / 2301, 200 / 2301),
    ("obstacle", 9, False, 200 / 2391, 200 / 2391),
])
def test_ground_truth_components_below_the_track_size_become_void(track, pixels, kept, siou_gt, ppv):
    frame = _frame(gt=[(12, 22, 12, 32), (27, 28, 12, 12 + pixels)], pred=[(10, 30, 10, 130)])
    got = _metrics([frame], track)
    _assert_components(got, siou_gt, ppv, [0.0] * 11)  # every sIoU and PPV < 0.25


@pytest.mark.parametrize("gt_rows, siou, f1", [
    # gt 300 px inside a 600-px prediction: sIoU = PPV = 0.5 exactly: TP for τ <= 0.5 (sIoU >= τ),
    # FN and FP (PPV < τ) from 0.55 on.
    (15, 0.5, [1.0] * 6 + [0.0] * 5),
    # 360 px: sIoU = PPV = the float 0.6, below linspace's 0.6000000000000001: FN and FP at that τ.
    (18, 0.6, [1.0] * 7 + [0.0] * 4),
])
def test_ties_at_tau_count_as_tp_and_not_as_fp(gt_rows, siou, f1):
    got = _metrics([_frame(gt=[(10, 10 + gt_rows, 10, 30)], pred=[GOOD])])
    assert THRESHOLDS[7] == 0.6000000000000001
    _assert_components(got, siou, siou, f1)


def test_void_splits_a_prediction_before_the_size_filter():
    # The bar cols 70-125 (1120 px) loses the void cols 100-101: cols 70-99 (600 px, = gt) and
    # cols 102-125 (480 px, removed although the bar was larger than 500 px). The detection is left.
    got = _metrics([_frame(gt=[(10, 30, 70, 100)], pred=[(10, 30, 70, 126)], void=[(0, 100, 100, 102)])])
    _assert_components(got, 1.0, 1.0, [1.0] * 11)
    # Pixel F1 at threshold 1: TP 600, FP 480 (the 40 void pixels scoring 1 do not count).
    assert got["best_f1"] == pytest.approx(2 * 600 / (2 * 600 + 480), rel=1e-15)


def test_a_prediction_cut_by_a_too_small_object_stays_one_component():
    # Obstacle track: P rows 40-48 x cols 100-179 (720 px) is cut by a 9-px column of ground truth
    # (col 140), which becomes void: one FP of PPV 0 (not two), beside a perfect detection.
    got = _metrics([_frame(gt=[GOOD, (40, 49, 140, 141)], pred=[GOOD, (40, 49, 100, 180)])], "obstacle")
    _assert_components(got, 1.0, 0.5, [2 / 3] * 11)


def test_a_prediction_touching_two_objects():
    # K1 cols 10-39, K2 cols 60-89 (600 px each, rows 10-29); P rows 15-24 x cols 20-79 (600 px):
    # 200 px on each object, 200 off. sIoU(K1) = 200 / (600 + 200) = 1/4 (the pixels on K2 do not
    # count against K1), the same for K2; PPV = 400 / 600. τ = 0.25: TP 2 -> F1 1; then FN 2, and
    # from τ = 0.7 also FP 1 -> F1 0.
    got = _metrics([_frame(gt=[(10, 30, 10, 40), (10, 30, 60, 90)], pred=[(15, 25, 20, 80)])])
    _assert_components(got, 0.25, 2 / 3, [1.0] + [0.0] * 10)


def test_an_object_touched_by_two_predictions():
    # K rows 10-29 x cols 10-109 (2000 px); P1 rows 12-21 x cols 0-59 (500 on K, 100 off),
    # P2 rows 12-21 x cols 80-139 (300 on K, 300 off). sIoU = 800 / (2000 + 100 + 300) = 1/3;
    # PPV 5/6 and 1/2. TP for τ <= 0.3, FP (P2) from τ = 0.55.
    got = _metrics([_frame(gt=[(10, 30, 10, 110)], pred=[(12, 22, 0, 60), (12, 22, 80, 140)])])
    _assert_components(got, 1 / 3, (5 / 6 + 1 / 2) / 2, [1.0, 1.0] + [0.0] * 9)


def test_frames_without_anomalies():
    # A perfect detection, a frame with a 600-px FP and no object, a frame with neither.
    frames = [_frame(gt=[GOOD], pred=[GOOD]), _frame(pred=[GOOD]), _frame()]
    got = _metrics(frames)
    _assert_components(got, 1.0, 0.5, [2 / 3] * 11)
    # One threshold above 0: TP 600, FP 600 (precision 1/2 at recall 1).
    negatives = 3 * SHAPE[0] * SHAPE[1] - 600
    assert got["ap"] == pytest.approx(0.5, rel=1e-15)
    assert got["best_f1"] == pytest.approx(2 / 3, rel=1e-15)
    assert got["fpr95"] == pytest.approx(600 / negatives, rel=1e-15)


def _assert_all_undefined(got):
    for key in ("ap", "fpr95", "best_f1", "best_f1_threshold", "siou_gt", "ppv", "mean_f1"):
        assert math.isnan(got[key]), key
    assert len(got["f1"]) == 11 and all(math.isnan(f1) for f1 in got["f1"])
    assert got["thresholds"] == THRESHOLDS.tolist()


@pytest.mark.parametrize("frames", [[], [_frame()], [_frame(pred=[GOOD])], [_frame(void=[(0, 100, 0, 600)])]],
                         ids=["no frames", "nothing", "scores but no anomaly", "all void"])
def test_without_anomaly_pixels_everything_is_nan(frames):
    # Without an anomaly pixel no threshold is best: nothing is predicted, no component exists.
    _assert_all_undefined(smiyc_metrics([s for s, _ in frames], [label for _, label in frames], "anomaly"))


def test_only_false_positives_give_f1_zero():
    # The only object (50 px) is too small and becomes void: no gt component; the 600-px
    # prediction around it counts its 550 other pixels, none on an object.
    got = _metrics([_frame(gt=[(15, 20, 15, 25)], pred=[GOOD])])
    assert math.isnan(got["siou_gt"])
    assert got["ppv"] == 0.0 and got["f1"] == [0.0] * 11 and got["mean_f1"] == 0.0


def test_without_in_distribution_pixels_ap_and_fpr95_are_nan():
    scores, labels = _frame(gt=[(0, 100, 0, 600)], pred=[GOOD])
    got = smiyc_metrics([scores], [labels], "anomaly")
    assert math.isnan(got["ap"]) and math.isnan(got["fpr95"])
    # Predicting everything (threshold 0) is best: F1 1, one gt component covered by one prediction.
    assert got["best_f1"] == 1.0 and got["best_f1_threshold"] == 0.0
    _assert_components(got, 1.0, 1.0, [1.0] * 11)


def _random_frames(seed, n=3, shape=(40, 50)):
    """Float32 scores with float16 ties, -0.0 and +0.0, correlated with random labels incl. void."""
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n):
        labels = rng.choice(np.array([0, 1, 255], np.uint8), size=shape, p=[0.7, 0.2, 0.1])
        scores = (rng.normal(size=shape) + 1.5 * (labels == 1)).astype(np.float32)
        scores[rng.random(shape) < 0.05] = 0.0
        scores[rng.random(shape) < 0.05] = -0.0
        frames.append((scores, labels))
    return frames


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pixel_metrics_equal_scikit_learn_on_the_float16_scores(seed):
    frames = _random_frames(seed)
    got = smiyc_metrics([s for s, _ in frames], [label for _, label in frames], "obstacle")
    valid = np.concatenate([(label != 255).ravel() for _, label in frames])
    y = np.concatenate([(label == 1).ravel() for _, label in frames])[valid]
    s = np.concatenate([score.astype(np.float16).astype(np.float64).ravel() for score, _ in frames])[valid]
    assert np.unique(s).size < s.size  # ties, and 0.0 equal to -0.0
    assert got["ap"] == pytest.approx(average_precision_score(y, s), abs=1e-12)
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    assert got["fpr95"] == fpr[np.argmax(tpr >= 0.95)]
    precision, recall, thresholds = precision_recall_curve(y, s)
    with np.errstate(invalid="ignore"):  # 0 / 0 where no positive is above the threshold
        f1 = (2 * precision * recall / (precision + recall))[:-1]
    assert got["best_f1"] == pytest.approx(np.nanmax(f1), abs=1e-12)
    assert got["best_f1_threshold"] == thresholds[np.isclose(f1, np.nanmax(f1), rtol=1e-12, atol=0)].max()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float16_edges_select_exactly_the_scores_that_round_to_the_threshold_or_above(dtype):
    # Every float16 value t: the edge rounds to >= t and the value of dtype just below it to < t.
    # Rounding is monotone, so score >= edge is float16(score) >= t for every score of dtype.
    thresholds = np.arange(2**16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    thresholds = thresholds[~np.isnan(thresholds)]
    edges = float16_edge(thresholds, dtype)
    with np.errstate(over="ignore"):  # casts beyond 65504
        assert edges.dtype == dtype and (edges.astype(np.float16) >= thresholds).all()
        below = np.nextafter(edges, dtype(-np.inf))
        assert (below.astype(np.float16) < thresholds)[thresholds > -np.inf].all()
    assert float16_edge(np.inf, dtype) == 65520 and float16_edge(0.0, dtype) == -(2.0**-25)
    assert float16_edge(0.5, np.float16) == 0.5 and np.isnan(float16_edge(np.nan, dtype))


def _component_frames(seed, n=4, shape=(120, 200)):
    """Smooth scores with bumps on (shifted) objects and elsewhere; labels with a void band."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[:shape[0], :shape[1]]
    frames = []
    for _ in range(n):
        labels = np.zeros(shape, np.uint8)
        scores = ndimage.gaussian_filter(rng.random(shape), 4)
        for k, (r, c, radius) in enumerate(zip(rng.integers(20, 100, 6), rng.integers(20, 180, 6),
                                               rng.integers(2, 12, 6))):
            if k < 4:
                labels[(rows - r) ** 2 + (cols - c) ** 2 < radius ** 2] = 1
            r, c = r + rng.integers(-3, 4), c + rng.integers(-3, 4)
            scores += np.exp(-((rows - r) ** 2 + (cols - c) ** 2) / (2 * radius ** 2))
        labels[-10:] = 255
        frames.append((scores.astype(np.float32), labels))
    return frames


class _Reiterable:
    """Neither a list nor a callable: an object whose iter() starts anew."""

    def __init__(self, items):
        self.items = items

    def __iter__(self):
        return iter(self.items)


def test_generators_lists_reiterables_and_callables_agree():
    frames = _component_frames(3)
    scores, labels = [s for s, _ in frames], [label for _, label in frames]
    expected = smiyc_metrics(scores, labels, "obstacle")
    assert expected["siou_gt"] > 0 and expected["ppv"] > 0  # components were found and matched
    calls = []

    def scores_anew():
        calls.append("scores")
        return (s for s in scores)

    for args in [((s for s in scores), (label for label in labels)),  # one-shot: cached
                 (scores, iter(labels)),
                 (scores_anew, lambda: iter(labels)),
                 (_Reiterable(scores), tuple(labels))]:
        np.testing.assert_equal(smiyc_metrics(*args, "obstacle"), expected)
    assert calls == ["scores", "scores"]  # a callable is read twice, one frame at a time


def test_the_cache_of_a_one_shot_iterator_has_a_budget():
    frames = _component_frames(4, n=2)
    with pytest.raises(MetaOodError, match="cache budget"):
        smiyc_metrics((s for s, _ in frames), (label for _, label in frames), "anomaly", cache_budget=10_000)
    # Lists are read twice and cache nothing.
    smiyc_metrics([s for s, _ in frames], [label for _, label in frames], "anomaly", cache_budget=0)


def test_nan_scores_count_only_where_the_label_is_valid():
    scores, labels = _frame(gt=[GOOD], pred=[GOOD], void=[(90, 100, 0, 600)])
    scores[95, 5] = np.nan  # void: ignored
    assert smiyc_metrics([scores], [labels], "anomaly")["best_f1"] == 1.0
    scores[50, 5] = np.nan
    with pytest.raises(ValueError, match="1 pixels with label 0 or 1 are NaN"):
        smiyc_metrics([scores], [labels], "anomaly")


@pytest.mark.parametrize("scores, labels, message", [
    ([np.zeros((4, 5))], [np.zeros((4, 5), np.uint8)] * 2, "more label maps than score maps"),
    ([np.zeros((4, 5))], [np.zeros((4, 6), np.uint8)], "one shape"),
    ([np.zeros((4, 5))], [np.zeros((4, 5), np.int32)], "uint8"),
    ([np.zeros((4, 5), np.int32)], [np.zeros((4, 5), np.uint8)], "float16, float32 or float64 scores"),
    ([np.zeros((4, 5))], [np.full((4, 5), 2, np.uint8)], r"0, 1 or 255, got also \[2\]"),
])
def test_bad_frames_are_errors(scores, labels, message):
    with pytest.raises(ValueError, match=message):
        smiyc_metrics(scores, labels, "anomaly")


def test_tracks_and_an_unknown_track():
    assert TRACKS["anomaly"] == (500, 100) and TRACKS["obstacle"] == (50, 10)
    with pytest.raises(ValueError, match="track"):
        smiyc_metrics([], [], "road")
