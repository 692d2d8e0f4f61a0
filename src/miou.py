"""In-distribution segmentation quality: a confusion matrix summed over images, IoU, mIoU.

IoU_c = TP_c / (TP_c + FP_c + FN_c); mIoU = the mean over the classes present in the ground
truth or the prediction (a class absent from both has no IoU and is left out). Pixels whose
ground truth is void are ignored, whatever is predicted there.
"""
import numpy as np

NUM_CLASSES = 19
VOID = 255


def _checked_ids(ids, name, num_classes):
    if ids.size and (ids.min() < 0 or ids.max() >= num_classes):
        raise ValueError(f"{name}: expected train ids 0..{num_classes - 1} on non-void pixels, "
                         f"found values in [{ids.min()}, {ids.max()}]")
    return ids.astype(np.int64)


def confusion_matrix(pred, gt, num_classes=NUM_CLASSES, void=VOID):
    """int64 (num_classes, num_classes) pixel counts, rows = ground truth, columns = prediction."""
    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction of shape {pred.shape} and ground truth of shape {gt.shape}: "
                         f"expected the same shape")
    labelled = gt != void
    gt_ids = _checked_ids(gt[labelled], "ground truth", num_classes)
    pred_ids = _checked_ids(pred[labelled], "prediction", num_classes)
    counts = np.bincount(gt_ids * num_classes + pred_ids, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def class_ious(confusion):
    """float64 (num_classes,) IoU per class; nan for a class absent from ground truth and prediction."""
    confusion = np.asarray(confusion)
    tp = np.diag(confusion).astype(np.float64)
    union = confusion.sum(axis=0) + confusion.sum(axis=1) - tp
    return np.divide(tp, union, out=np.full(tp.shape, np.nan), where=union > 0)


def mean_iou(confusion):
    """Mean IoU over the classes present in the ground truth or the prediction."""
    ious = class_ious(confusion)
    present = ~np.isnan(ious)
    if not present.any():
        raise ValueError("the confusion matrix is empty: no labelled (non-void) pixel was counted")
    return float(ious[present].mean())
