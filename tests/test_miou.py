"""Confusion matrix and mean IoU on hand-built label maps."""
import numpy as np
import pytest

from src.miou import class_ious, confusion_matrix, mean_iou

GT = np.array([[0, 0, 1, 1],
               [1, 2, 255, 255]], np.uint8)
PRED = np.array([[0, 1, 1, 1],
                 [1, 2, 5, 0]], np.uint8)


def test_confusion_by_hand():
    # Non-void pixels (gt -> pred): 0->0, 0->1, 1->1, 1->1, 1->1, 2->2; the two void pixels are ignored.
    # IoU_0 = 1 / (1 + 0 + 1) = 1/2, IoU_1 = 3 / (3 + 1 + 0) = 3/4, IoU_2 = 1; classes 3..18 absent.
    # mIoU = (1/2 + 3/4 + 1) / 3 = 3/4.
    conf = confusion_matrix(PRED, GT)
    assert conf.shape == (19, 19) and conf.sum() == 6
    assert (conf[0, 0], conf[0, 1], conf[1, 1], conf[2, 2]) == (1, 1, 3, 1)
    ious = class_ious(conf)
    np.testing.assert_allclose(ious[:3], [1 / 2, 3 / 4, 1.0], rtol=0, atol=1e-15)
    assert np.isnan(ious[3:]).all()
    assert mean_iou(conf) == pytest.approx(3 / 4, abs=1e-15)


def test_class_only_predicted_counts_with_iou_zero():
    # Predicting class 7 on a gt-2 pixel: IoU_2 = 0 / (0 + 0 + 1) = 0, IoU_7 = 0 / (0 + 1 + 0) = 0.
    # mIoU = (1/2 + 3/4 + 0 + 0) / 4 = 5/16.
    pred = PRED.copy()
    pred[1, 1] = 7
    assert mean_iou(confusion_matrix(pred, GT)) == pytest.approx(5 / 16, abs=1e-15)


def test_perfect_prediction():
    gt = np.random.default_rng(0).integers(0, 19, (50, 60)).astype(np.uint8)
    gt[:5] = 255
    assert mean_iou(confusion_matrix(np.where(gt == 255, 3, gt), gt)) == 1.0


def test_void_is_ignored_and_images_add_up():
    rng = np.random.default_rng(1)
    gt = rng.choice(np.r_[np.arange(19), 255].astype(np.uint8), (2, 40, 50))
    pred = rng.integers(0, 19, (2, 40, 50)).astype(np.uint8)
    other_pred_on_void = np.where(gt == 255, (pred + 1) % 19, pred)
    np.testing.assert_array_equal(confusion_matrix(pred, gt), confusion_matrix(other_pred_on_void, gt))
    both = confusion_matrix(pred[0], gt[0]) + confusion_matrix(pred[1], gt[1])
    np.testing.assert_array_equal(both, confusion_matrix(pred, gt))
    assert both.sum() == np.count_nonzero(gt != 255)


def test_bad_input_is_an_error():
    with pytest.raises(ValueError, match="ground truth: expected train ids 0..18"):
        confusion_matrix(PRED, np.where(GT == 2, 19, GT))
    with pytest.raises(ValueError, match="prediction: expected train ids 0..18"):
        confusion_matrix(np.where(PRED == 2, 30, PRED), GT)
    with pytest.raises(ValueError, match="same shape"):
        confusion_matrix(PRED[:, :3], GT)
    with pytest.raises(ValueError, match="no labelled"):
        mean_iou(confusion_matrix(PRED, np.full_like(GT, 255)))
