"""Component-level OoD metrics of the SegmentMeIfYouCan benchmark: sIoU, PPV, F1.

Per image; void pixels are removed from the prediction first (they never count):
    gt components K     8-connected components of the ground-truth OoD mask.
    predicted comps P   8-connected components of (predicted OoD mask & ~void).
    sIoU(K) = |K ∩ K̂| / (|K ∪ K̂| - |A|), where K̂ = the union of the predicted components
              that intersect K and A = K̂ ∩ (gt OoD \\ K), the pixels of K̂ that lie on other
              gt components: one prediction covering two objects is not counted against
              either. sIoU = 0 when no prediction touches K. Since K ∩ K̂ = K ∩ prediction,
              the denominator equals |K| + |K̂ \\ gt OoD|, which is how it is computed.
    PPV(P)  = |P ∩ gt OoD| / |P|  (positive predictive value).
Over a data set, all components of all images pooled, for each τ in THRESHOLDS
(0.25, 0.30, ..., 0.75):
    TP = #K with sIoU > τ,  FN = #K with sIoU <= τ,  FP = #P with PPV <= τ,
    F1(τ) = 2 TP / (2 TP + FN + FP);  mean F1 = the mean of F1(τ) over the 11 τ.
"""
import math

import numpy as np
from scipy import ndimage

EIGHT_CONNECTED = np.ones((3, 3), bool)
# The decimal values 0.25, 0.30, ..., 0.75 (rounded, so that 0.3 is the float 0.3).
THRESHOLDS = np.round(np.arange(0.25, 0.76, 0.05), 2)


def _checked_masks(**masks):
    masks = {name: np.asarray(mask, dtype=bool) for name, mask in masks.items()}
    shapes = {mask.shape for mask in masks.values()}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ValueError("expected 2-D masks of one shape, got "
                         + ", ".join(f"{name} {mask.shape}" for name, mask in masks.items()))
    return masks.values()


def component_scores(pred_ood, gt_ood, void):
    """(sIoU per gt component, PPV per predicted component) of one image, float64 arrays.

    pred_ood, gt_ood, void: (H, W) boolean masks; gt_ood and void must not overlap. Components
    are in scipy.ndimage.label order (row-major order of each component's first pixel).
    """
    pred_ood, gt_ood, void = _checked_masks(pred_ood=pred_ood, gt_ood=gt_ood, void=void)
    if (gt_ood & void).any():
        raise ValueError(f"{np.count_nonzero(gt_ood & void)} pixels are both ground-truth OoD and void")
    pred = pred_ood & ~void
    gt_labels, n_gt = ndimage.label(gt_ood, structure=EIGHT_CONNECTED)
    pred_labels, n_pred = ndimage.label(pred, structure=EIGHT_CONNECTED)
    # The predicted pixels are few: index them once instead of masking whole images.
    on_pred = np.flatnonzero(pred)
    return pixel_component_scores(pred_labels.ravel()[on_pred], gt_labels.ravel()[on_pred], n_pred,
                                  np.bincount(gt_labels.ravel(), minlength=n_gt + 1))


def map_component_scores(components, gt_components, kept=None):
    """component_scores of the segment search's components maps (+k / -k on segment k's pixels) of
    predicted and ground-truth segments, the predicted ones restricted to those `kept` (a bool per
    predicted segment; None: all), without labelling the image again.

    The maps' segments are the 8-connected components of the prediction without void and of the
    ground-truth OoD mask, numbered in the row-major order of their first pixel as ndimage.label
    numbers them: their ids are component_scores's labels. Removed segments leave gaps in the ids,
    which keeps the kept ones in the order a new labelling would give them.
    """
    # only segment pixels are looked at (flatnonzero of a bool mask: 8x faster than of the int32 map)
    on_pred = np.flatnonzero(components != 0)
    pred_ids = np.abs(components.ravel()[on_pred])
    if kept is not None:
        on_kept = np.r_[False, np.asarray(kept, bool)][pred_ids]
        on_pred, pred_ids = on_pred[on_kept], pred_ids[on_kept]
    gt_flat = gt_components.ravel()
    gt_size = np.bincount(np.abs(gt_flat[np.flatnonzero(gt_flat != 0)]), minlength=1)
    return pixel_component_scores(pred_ids, np.abs(gt_flat[on_pred]), int(pred_ids.max(initial=0)), gt_size)


def pixel_component_scores(pred_ids, gt_ids, n_pred, gt_size):
    """(sIoU per gt component, PPV per predicted component), float64 arrays in id order, from
    the predicted pixels that count and the sizes of the gt components.

    pred_ids, gt_ids: for each such pixel its predicted component (1..n_pred) and its gt
    component (0 = none); gt_size: the pixels of each gt component, index 0 unused. A predicted
    id without a pixel, or a gt id of size 0, is no component (no entry), so that removed
    components may leave gaps; leaving out some pixels of a predicted component is how void that
    cuts it after labelling keeps it one component.
    """
    pred_size = np.bincount(pred_ids, minlength=n_pred + 1)
    on_gt = gt_ids > 0
    pred_ids, gt_ids = pred_ids[on_gt], gt_ids[on_gt]
    pred_on_gt = np.bincount(pred_ids, minlength=n_pred + 1)
    intersection = np.bincount(gt_ids, minlength=gt_size.size)
    # Each (K, P) pair that touches once: P's pixels off the gt OoD mask join K's denominator.
    pairs = np.unique(gt_ids.astype(np.int64) * (n_pred + 1) + pred_ids)
    pair_gt, pair_pred = np.divmod(pairs, n_pred + 1)
    touching_off_gt = np.bincount(pair_gt, weights=(pred_size - pred_on_gt)[pair_pred], minlength=gt_size.size)
    gt_kept, pred_kept = gt_size > 0, pred_size > 0
    gt_kept[0] = pred_kept[0] = False
    siou = intersection[gt_kept] / (gt_size[gt_kept] + touching_off_gt[gt_kept])
    return siou, pred_on_gt[pred_kept] / pred_size[pred_kept]


def component_summary(siou, ppv, thresholds=THRESHOLDS):
    """Data-set figures from the pooled per-component sIoU and PPV values (module doc).

    Returns {'siou_gt': mean sIoU, 'ppv': mean PPV, 'thresholds', 'tp', 'fn', 'fp', 'f1'
    (lists, one entry per τ), 'mean_f1'}; a mean over no component, or an F1 whose
    2 TP + FN + FP is 0, is nan.
    """
    siou, ppv = np.asarray(siou, np.float64), np.asarray(ppv, np.float64)
    thresholds = np.asarray(thresholds, np.float64)
    tp = (siou[:, None] > thresholds).sum(axis=0)
    fn = siou.size - tp
    fp = (ppv[:, None] <= thresholds).sum(axis=0)
    denominator = 2 * tp + fn + fp
    f1 = [2 * t / d if d else math.nan for t, d in zip(tp.tolist(), denominator.tolist())]
    return {
        "siou_gt": float(siou.mean()) if siou.size else math.nan,
        "ppv": float(ppv.mean()) if ppv.size else math.nan,
        "thresholds": thresholds.tolist(),
        "tp": tp.tolist(),
        "fn": fn.tolist(),
        "fp": fp.tolist(),
        "f1": f1,
        "mean_f1": float(np.mean(f1)),
    }


class ComponentAccumulator:
    """Collects per-component sIoU and PPV over images; `summary()` gives the data-set figures."""

    def __init__(self):
        self.siou = []
        self.ppv = []

    def update(self, pred_ood, gt_ood, void):
        self.add(*component_scores(pred_ood, gt_ood, void))

    def add(self, siou, ppv):
        """Adds one image's (sIoU per gt component, PPV per predicted component)."""
        self.siou.append(siou)
        self.ppv.append(ppv)

    def summary(self, thresholds=THRESHOLDS):
        return component_summary(np.concatenate([np.empty(0), *self.siou]),
                                 np.concatenate([np.empty(0), *self.ppv]), thresholds)
