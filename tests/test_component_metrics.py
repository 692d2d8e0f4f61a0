"""Component metrics on hand-built masks whose sIoU, PPV and F1 are worked out below."""
import numpy as np
import pytest

from src.component_metrics import (THRESHOLDS, ComponentAccumulator, component_scores, component_summary,
                                   map_component_scores)


def _mask(shape, *boxes):
    """Boolean mask with the boxes (row0, row1, col0, col1), ends inclusive, set."""
    mask = np.zeros(shape, bool)
    for r0, r1, c0, c1 in boxes:
        mask[r0:r1 + 1, c0:c1 + 1] = True
    return mask


def _image_a():
    """One prediction across two objects, one prediction on no object, one missed object.

    gt:   K1 rows 1-3 x cols 1-3 (9 px), K2 rows 1-3 x cols 6-8 (9 px), K3 rows 7-8 x cols 1-2 (4 px).
    pred: P1 row 2 x cols 2-7 (6 px): on K1 (cols 2, 3), on K2 (cols 6, 7), off gt (cols 4, 5);
          P2 rows 7-8 x cols 9-10 (4 px), on no object.
    sIoU(K1): K̂ = P1, |K1 ∩ K̂| = 2, |K1 ∪ K̂| = 9 + 6 - 2 = 13, A = P1 ∩ K2 = 2 px -> 2 / 11.
    sIoU(K2) = 2 / 11 likewise; sIoU(K3) = 0 (nothing touches it).
    PPV(P1) = 4 / 6, PPV(P2) = 0.
    """
    shape = (10, 12)
    gt = _mask(shape, (1, 3, 1, 3), (1, 3, 6, 8), (7, 8, 1, 2))
    pred = _mask(shape, (2, 2, 2, 7), (7, 8, 9, 10))
    return pred, gt, np.zeros(shape, bool)


def _image_b():
    """A good detection: gt K rows 2-5 x cols 2-5 (16 px), pred P rows 2-6 x cols 2-5 (20 px).

    sIoU = 16 / (16 + 20 - 16) = 0.8; PPV = 16 / 20 = 0.8.
    """
    shape = (9, 9)
    return _mask(shape, (2, 6, 2, 5)), _mask(shape, (2, 5, 2, 5)), np.zeros(shape, bool)


def test_prediction_touching_two_objects_and_one_touching_none():
    siou, ppv = component_scores(*_image_a())
    np.testing.assert_allclose(siou, [2 / 11, 2 / 11, 0.0], rtol=0, atol=1e-15)
    np.testing.assert_allclose(ppv, [4 / 6, 0.0], rtol=0, atol=1e-15)


def test_good_detection():
    siou, ppv = component_scores(*_image_b())
    np.testing.assert_allclose(siou, [0.8], rtol=0, atol=1e-15)
    np.testing.assert_allclose(ppv, [0.8], rtol=0, atol=1e-15)


def test_two_predictions_on_one_object_share_its_siou():
    # K rows 0-3 x cols 0-9 (40 px); P1 rows 1-2 x cols 0-1 (4 px, all on K); P2 rows 1-2 x cols 8-11
    # (8 px, 4 on K, 4 off). K̂ = P1 ∪ P2: sIoU = 8 / (40 + 12 - 8) = 8 / 44. PPV = 1 and 4 / 8.
    shape = (6, 14)
    gt = _mask(shape, (0, 3, 0, 9))
    pred = _mask(shape, (1, 2, 0, 1), (1, 2, 8, 11))
    siou, ppv = component_scores(pred, gt, np.zeros(shape, bool))
    np.testing.assert_allclose(siou, [8 / 44], rtol=0, atol=1e-15)
    np.testing.assert_allclose(ppv, [1.0, 0.5], rtol=0, atol=1e-15)


def test_void_pixels_leave_the_prediction():
    # Void column 5 splits the predicted bar (rows 2-3 x cols 2-8) into P1 (cols 2-4, 6 px, 4 on K)
    # and P2 (cols 6-8, 6 px, off gt); the prediction inside the void block (rows 6-7) is dropped.
    # K rows 2-3 x cols 3-4 (4 px): only P1 touches it, sIoU = 4 / (4 + 2) = 2 / 3.
    shape = (9, 10)
    void = _mask(shape, (0, 8, 5, 5), (6, 7, 0, 3))
    gt = _mask(shape, (2, 3, 3, 4))
    pred = _mask(shape, (2, 3, 2, 8), (6, 7, 0, 3))
    siou, ppv = component_scores(pred, gt, void)
    np.testing.assert_allclose(siou, [2 / 3], rtol=0, atol=1e-15)
    np.testing.assert_allclose(ppv, [4 / 6, 0.0], rtol=0, atol=1e-15)


def test_components_are_eight_connected():
    # A diagonal chain of 3 gt pixels is one object; a prediction touching it diagonally only
    # (pixel (3, 3)) is a separate component that does not intersect it.
    gt = np.eye(5, dtype=bool)
    gt[3:, 3:] = False  # (0,0), (1,1), (2,2)
    pred = np.zeros((5, 5), bool)
    pred[0, 0] = pred[3, 3] = True
    siou, ppv = component_scores(pred, gt, np.zeros((5, 5), bool))
    # K = 3 px, K̂ = P at (0,0) only (one px, on K): sIoU = 1 / 3; PPV = 1 and 0.
    np.testing.assert_allclose(siou, [1 / 3], rtol=0, atol=1e-15)
    np.testing.assert_allclose(ppv, [1.0, 0.0], rtol=0, atol=1e-15)


def test_summary_over_two_images():
    # Pooled sIoU = [2/11, 2/11, 0, 0.8], PPV = [2/3, 0, 0.8].
    # Every τ (max 0.75): TP = 1 (0.8 > τ), FN = 3. FP: PPV 0 always; 2/3 <= τ only for τ = 0.70, 0.75;
    # 0.8 never. So F1 = 2 / (2 + 3 + 1) = 1/3 for the 9 τ 0.25..0.65, 2 / (2 + 3 + 2) = 2/7 for 0.70, 0.75.
    # Mean F1 = (9 * 1/3 + 2 * 2/7) / 11 = 25 / 77. Mean sIoU = (4/11 + 4/5) / 4 = 16/55, mean PPV = 22/45.
    acc = ComponentAccumulator()
    acc.update(*_image_a())
    acc.update(*_image_b())
    got = acc.summary()
    assert got["thresholds"] == [0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75]
    assert got["tp"] == [1] * 11
    assert got["fn"] == [3] * 11
    assert got["fp"] == [1] * 9 + [2] * 2
    np.testing.assert_allclose(got["f1"], [1 / 3] * 9 + [2 / 7] * 2, rtol=0, atol=1e-15)
    assert got["mean_f1"] == pytest.approx(25 / 77, abs=1e-15)
    assert got["siou_gt"] == pytest.approx(16 / 55, abs=1e-15)
    assert got["ppv"] == pytest.approx(22 / 45, abs=1e-15)


def test_thresholds_are_strict_for_tp_and_inclusive_for_fp():
    # sIoU = PPV = 0.5 exactly: at τ = 0.5 the object is a FN and the prediction a FP, at 0.45 a TP.
    got = component_summary([0.5], [0.5], thresholds=[0.45, 0.5])
    assert (got["tp"], got["fn"], got["fp"]) == ([1, 0], [0, 1], [0, 1])
    assert got["f1"] == [1.0, 0.0]
    assert len(THRESHOLDS) == 11


def test_summary_without_components():
    got = ComponentAccumulator().summary()
    assert np.isnan(got["siou_gt"]) and np.isnan(got["ppv"]) and np.isnan(got["mean_f1"])
    # Only false positives: F1 = 0, not undefined.
    assert component_summary([], [0.1])["f1"] == [0.0] * 11


def test_bad_masks_are_errors():
    with pytest.raises(ValueError, match="one shape"):
        component_scores(np.zeros((3, 3)), np.zeros((3, 4)), np.zeros((3, 3)))
    overlap = np.zeros((3, 3), bool)
    overlap[1, 1] = True
    with pytest.raises(ValueError, match="both ground-truth OoD and void"):
        component_scores(overlap, overlap, overlap)


@pytest.mark.parametrize("seed", range(4))
def test_scores_from_the_segment_search_maps_equal_those_of_labelling_again(seed):
    """The evaluation takes the components of the segment search's maps instead of labelling the
    prediction again: the same values in the same order, also with segments removed."""
    from src.metaseg import compute_metrics_components, compute_metrics_mask
    from src.scores import entropy_mask
    from tests.test_segment_search import OOD_INDEX, probs_image
    rng = np.random.default_rng(seed)
    probs, gt_train, gt_label = probs_image(rng, H=60, W=80)
    mask = entropy_mask(probs, 0.7)
    components = compute_metrics_components(probs, gt_train, mask, OOD_INDEX)[1]
    gt_components = compute_metrics_mask(probs, mask, gt_train, gt_label, OOD_INDEX)[1]
    n_segments = np.abs(components).max()
    assert n_segments >= 3
    gt_ood, void = gt_train == OOD_INDEX, gt_train == 255
    for kept in (None, rng.random(n_segments) < 0.5, np.zeros(n_segments, bool)):
        removed = np.flatnonzero(~kept) + 1 if kept is not None else []
        predicted = (components != 0) & ~np.isin(np.abs(components), removed)
        for got, expected in zip(map_component_scores(components, gt_components, kept),
                                 component_scores(predicted, gt_ood, void)):
            np.testing.assert_array_equal(got, expected)
