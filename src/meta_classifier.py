"""Meta classification of predicted OoD segments and false-positive removal (docs/METHOD.md §5).

Pure functions on what the segment search computed for every image: the metrics of its predicted
segments (dict key -> per-segment array, as `compute_metrics_components` returns them) and the
components maps of predicted and ground-truth segments (+k on inner, -k on boundary pixels of
segment k, 0 elsewhere). A logistic regression predicts from the metrics whether a segment is a
false positive (iou0 = 1); cross-validation gives every segment an out-of-fold probability, and the
segments predicted iou0 = 1 are removed.
"""
import dataclasses
import logging
from typing import NamedTuple, Optional

import joblib
import numpy as np
from joblib import Parallel, delayed
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, average_precision_score, roc_auc_score
from sklearn.model_selection import KFold, LeaveOneGroupOut, LeaveOneOut

from src.errors import MetaOodError
from src.run_log import progress
from src.workers import ending_with_this_process

logger = logging.getLogger(__name__)

NOT_FEATURES = ("iou", "iou0", "prc")
CV_SCHEMES = ("loo", "image", "kfold")
STD_EPS = 1e-10
THRESHOLD = 0.5  # removed if P(iou0 = 1) > 0.5, i.e. the argmax of the two classes (ties kept)


class MetaClassifierError(MetaOodError, ValueError):
    """Segment-search data the meta classifier cannot use: images whose metrics or components maps
    do not fit together, or too few segments or images for the cross-validation (--cv, --folds)."""


class SegmentData(NamedTuple):
    features: np.ndarray  # (n, d) float64, every column standardized over the data set
    names: list  # the d feature names, sorted
    iou0: np.ndarray  # (n,) int: 1 for a false-positive segment
    image_index: np.ndarray  # (n,) int: the position of the segment's image in the input list


def feature_names(metrics):
    """The metric keys used as features: all but iou, iou0 and prc, sorted by name."""
    return sorted(k for k in metrics if k not in NOT_FEATURES)


def segment_data(metrics_per_image, image_ids=None):
    """Features, target and image index of every predicted segment of the data set.

    image_ids: per image the id that messages name (the probs-file index); default its position.
    As in the reference, each feature column is standardized, (x - mean) / (std + 1e-10), with
    statistics over all segments (the held-out ones of any cross-validation fold included).
    """
    if not metrics_per_image:
        raise ValueError("meta classifier: no image metrics given")
    names = feature_names(metrics_per_image[0])
    ids = _ids(image_ids, len(metrics_per_image))
    counts = [_segment_count(m, image_id, ids[0], metrics_per_image[0].keys())
              for image_id, m in zip(ids, metrics_per_image)]
    raw = _raw_features(metrics_per_image, names)
    features = (raw - raw.mean(axis=0)) / (raw.std(axis=0) + STD_EPS) if len(raw) else raw
    iou0 = np.concatenate([m["iou0"] for m in metrics_per_image]).astype(np.int64)
    image_index = np.repeat(np.arange(len(counts)), counts)
    return SegmentData(features, names, iou0, image_index)


def _raw_features(metrics_per_image, names):
    """(segments, features) float64 of the metrics `names` of every segment of the images."""
    raw = np.array([np.concatenate([m[k] for m in metrics_per_image]) for k in names], dtype=np.float64).T
    bad = [name for name, ok in zip(names, np.isfinite(raw).all(axis=0)) if not ok]
    if bad:
        raise ValueError(f"meta classifier: metrics {bad} hold NaN or infinite values")
    return raw


def _ids(image_ids, n_images):
    """The image ids that messages name: `image_ids`, or the positions 0..n-1."""
    return list(range(n_images)) if image_ids is None else list(image_ids)


def _segment_count(metrics, image_id, first_id, expected_keys):
    if metrics.keys() != expected_keys:
        missing, extra = sorted(expected_keys - metrics.keys()), sorted(metrics.keys() - expected_keys)
        raise MetaClassifierError(f"meta classifier: metrics of image {image_id} differ in keys from image "
                                  f"{first_id}'s (missing {missing}, extra {extra})")
    lengths = {len(v) for v in metrics.values()}
    if len(lengths) != 1:
        raise MetaClassifierError(f"meta classifier: metrics of image {image_id} have arrays of lengths "
                                  f"{sorted(lengths)}")
    return lengths.pop()


class LiblinearMetaClassifier:
    """LogisticRegression(solver="liblinear"), sklearn's defaults otherwise (L2, C = 1, intercept).

    Trained on a single class (a degenerate training fold) it predicts that class with
    probability 1 instead of failing.
    """

    def fit(self, features, target):
        self.classes_ = np.unique(target)
        self.model_ = (LogisticRegression(solver="liblinear").fit(features, target)
                       if len(self.classes_) > 1 else None)
        return self

    def predict_proba(self, features):
        if self.model_ is None:
            return np.ones((len(features), 1))
        return self.model_.predict_proba(features)


def cross_validation_splitter(cv, folds=5, seed=0):
    """loo: leave one segment out (the paper's); image: leave one image out (groups = image
    index, honest: no segment of the test image is seen in training); kfold: shuffled K folds."""
    if cv == "loo":
        return LeaveOneOut()
    if cv == "image":
        return LeaveOneGroupOut()
    if cv == "kfold":
        return KFold(n_splits=folds, shuffle=True, random_state=seed)
    raise ValueError(f"meta classifier: cv must be one of {', '.join(CV_SCHEMES)}, got {cv!r}")


def _check_splittable(data, cv, folds):
    n, images = len(data.iou0), len(np.unique(data.image_index))
    if cv == "loo" and n < 2:
        raise MetaClassifierError(f"meta classifier: cv 'loo' (--cv loo) needs at least 2 segments, got {n}")
    if cv == "image" and images < 2:
        raise MetaClassifierError(f"meta classifier: cv 'image' needs segments in at least 2 images, "
                                  f"got {images}; choose --cv loo or kfold")
    if cv == "kfold" and not 2 <= folds <= n:
        raise MetaClassifierError(f"meta classifier: cv 'kfold' needs 2 <= folds <= segments, got folds {folds} "
                                  f"and {n} segments; lower --folds or choose another --cv")


def out_of_fold_probabilities(data, cv="loo", folds=5, seed=0, n_jobs=1):
    """P(iou0 = 1) for every segment from the classifier trained on the folds that exclude it."""
    if len(data.iou0) == 0:
        return np.zeros(0)
    splitter = cross_validation_splitter(cv, folds, seed)
    _check_splittable(data, cv, folds)
    groups = data.image_index if cv == "image" else None
    splits = list(splitter.split(data.features, data.iou0, groups))
    logger.info("meta classifier: %d segments in %d images, cv %s (%d fits, %s jobs)", len(data.iou0),
                len(np.unique(data.image_index)), cv, len(splits), n_jobs)
    # one fit per fold, as sklearn's cross_val_predict does, but yielded in order for the progress bar
    with joblib.parallel_config(backend="loky", **ending_with_this_process()):
        fits = Parallel(n_jobs=n_jobs, return_as="generator")(
            delayed(_fold_probability)(data.features, data.iou0, train, test) for train, test in splits)
        probability = np.zeros(len(data.iou0))
        for test, fold_probability in progress(fits, total=len(splits), desc="meta classifier fits", unit="fit"):
            probability[test] = fold_probability
    return probability


def _fold_probability(features, target, train, test):
    """(test, P(iou0 = 1) of the test segments) from the classifier fitted on the `train` segments;
    0 where the training fold has no segment with iou0 = 1."""
    model = LiblinearMetaClassifier().fit(features[train], target[train])
    classes = model.classes_.tolist()
    return test, (model.predict_proba(features[test])[:, classes.index(1)] if 1 in classes else 0.0)


class FittedMetaClassifier(NamedTuple):
    """A meta classifier fitted on every segment of one data set, that decides on the segments of another
    (a test split without labels), whose features it standardizes with the training set's statistics."""
    names: list  # the feature names
    mean: np.ndarray  # per feature, over the training segments
    std: np.ndarray
    model: LiblinearMetaClassifier

    def removed(self, metrics) -> np.ndarray:
        """Per predicted segment of one image's metrics, whether it is removed (P(iou0 = 1) > THRESHOLD)."""
        if feature_names(metrics) != self.names:
            raise MetaClassifierError(f"meta classifier: metrics with the features {feature_names(metrics)}, but it "
                                      f"was fitted on {self.names}")
        raw = _raw_features([metrics], self.names)
        classes = self.model.classes_.tolist()
        if not len(raw) or 1 not in classes:
            return np.zeros(len(raw), bool)
        probability = self.model.predict_proba((raw - self.mean) / (self.std + STD_EPS))[:, classes.index(1)]
        return probability > THRESHOLD


def fit_meta_classifier(metrics_per_image, image_ids=None) -> FittedMetaClassifier:
    """The meta classifier fitted on every segment of the images (no cross-validation: it is meant for
    segments of other images)."""
    data = segment_data(metrics_per_image, image_ids)
    if not len(data.iou0):
        raise MetaClassifierError("meta classifier: no predicted segment to fit it on")
    raw = _raw_features(metrics_per_image, data.names)
    model = LiblinearMetaClassifier().fit(data.features, data.iou0)
    return FittedMetaClassifier(data.names, raw.mean(axis=0), raw.std(axis=0), model)


def classifier_scores(iou0, probability):
    """AUROC, AUPRC (average precision) and accuracy against iou0 (positive: iou0 = 1).

    AUROC and AUPRC are None where iou0 holds a single class, accuracy where there is no segment.
    """
    one_class = len(np.unique(iou0)) < 2
    return {
        "auroc": None if one_class else float(roc_auc_score(iou0, probability)),
        "auprc": None if one_class else float(average_precision_score(iou0, probability)),
        "accuracy": float(accuracy_score(iou0, probability > THRESHOLD)) if len(iou0) else None,
    }


def uncovered_counts(gt_components, components, kept_sets, image_ids=None):
    """Per per-image kept-flag list of `kept_sets`, the ground-truth segments that no kept predicted
    segment overlaps (shares a pixel with), summed over the images, in one pass: the maps of a data
    set are read from disk, one image at a time.

    gt_components, components: per image the components maps of ground-truth and predicted
    segments; a kept-flag list holds per image a flag for each predicted segment (all True: the
    false negatives before removal, i.e. gt segments with no predicted pixel); image_ids as for
    segment_data.
    """
    for kept in kept_sets:
        if not len(gt_components) == len(components) == len(kept):
            raise ValueError(f"meta classifier: {len(gt_components)} gt and {len(components)} predicted "
                             f"components maps, {len(kept)} kept-flag arrays; expected equal numbers")
    totals = np.zeros(len(kept_sets), np.int64)
    for gt_map, pred_map, image_id, *flags in zip(gt_components, components, _ids(image_ids, len(components)),
                                                   *kept_sets):
        totals += _uncovered_in_image(gt_map, pred_map, flags, image_id)
    return totals.tolist()


def _uncovered_in_image(gt_map, pred_map, kept_sets, image_id):
    """Per kept-flag array of `kept_sets`, the gt segments of the image that no kept segment overlaps."""
    if gt_map.shape != pred_map.shape:
        raise MetaClassifierError(f"meta classifier: image {image_id}: gt components map {gt_map.shape} and "
                                  f"predicted components map {pred_map.shape} differ in shape")
    # the predicted pixels are few: only they are looked at beyond the largest gt id
    on_pred = np.flatnonzero(pred_map != 0)  # of a bool mask: 8x faster than of the int32 map
    pred_labels = np.abs(pred_map.ravel()[on_pred].astype(np.int64))
    gt_labels = np.abs(gt_map.ravel()[on_pred].astype(np.int64))
    n_pred, n_gt = int(pred_labels.max(initial=0)), int(np.abs(gt_map).max(initial=0))
    counts = []
    for kept in kept_sets:
        if n_pred != len(kept):
            raise MetaClassifierError(f"meta classifier: image {image_id}: components map has {n_pred} "
                                      f"segments but {len(kept)} kept flags")
        kept_pixel = np.concatenate([[False], np.asarray(kept, dtype=bool)])[pred_labels]
        counts.append(n_gt - int(np.count_nonzero(np.unique(gt_labels[kept_pixel]))))
    return counts


def per_image(values, image_index, n_images):
    """Per-segment values split into one array per image."""
    image_index = np.asarray(image_index, dtype=np.int64)
    if image_index.size and image_index.max() >= n_images:
        raise ValueError(f"meta classifier: a segment of image {image_index.max()}, but {n_images} images")
    return [values[image_index == i] for i in range(n_images)]


def fp_fn_counts(iou0, removed, image_index, components, gt_components, image_ids=None):
    """False positives and negatives before and after removing the `removed` segments.

    FP: predicted segments with iou0 = 1 (before: all, after: the kept ones). FN: ground-truth
    segments that no (kept) predicted segment overlaps. Also the removed true positives (iou0 = 0),
    which the reference reported as "FP after".
    """
    is_fp, removed = np.asarray(iou0) == 1, np.asarray(removed, dtype=bool)
    kept = per_image(~removed, image_index, len(components))
    fn_before, fn_after = uncovered_counts(gt_components, components, [[np.ones_like(k) for k in kept], kept],
                                            image_ids)
    return {
        "fp_before": int(np.count_nonzero(is_fp)),
        "fn_before": fn_before,
        "fp_after": int(np.count_nonzero(is_fp & ~removed)),
        "fn_after": fn_after,
        "removed_true_positives": int(np.count_nonzero(~is_fp & removed)),
    }


@dataclasses.dataclass
class MetaClassifierResult:
    """Scores, FP/FN counts before and after removal, and the per-segment decisions."""
    cv: str
    folds: int
    seed: int
    n_images: int
    n_segments: int
    auroc: Optional[float]
    auprc: Optional[float]
    accuracy: Optional[float]
    fp_before: int  # predicted segments with iou0 = 1
    fn_before: int  # gt segments with no predicted pixel
    fp_after: int  # kept segments with iou0 = 1
    fn_after: int  # gt segments that no kept segment overlaps
    removed_true_positives: int  # removed segments with iou0 = 0
    image_index: list  # per segment, in segment order within each image
    iou0: list
    probability: list  # out-of-fold P(iou0 = 1)
    removed: list

    def to_dict(self):
        """Plain JSON-serializable data."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data):
        return cls(**data)

    def kept_per_image(self):
        """Per image, a bool array with one kept flag per predicted segment."""
        return per_image(~np.asarray(self.removed, dtype=bool), self.image_index, self.n_images)


def meta_classifier_result(metrics_per_image, components, gt_components, cv="loo", folds=5, seed=0, n_jobs=1,
                           image_ids=None):
    """Cross-validated meta classifier, false-positive removal and FP/FN counts of a data set.

    metrics_per_image: per image the metrics of its predicted segments; components, gt_components:
    per image the components maps of predicted and ground-truth segments (same order); image_ids:
    per image the id that messages name (the probs-file index), default its position.
    """
    if not len(metrics_per_image) == len(components) == len(gt_components):
        raise ValueError(f"meta classifier: metrics of {len(metrics_per_image)} images, {len(components)} "
                         f"predicted and {len(gt_components)} gt components maps; expected equal numbers")
    data = segment_data(metrics_per_image, image_ids)
    probability = out_of_fold_probabilities(data, cv, folds, seed, n_jobs)
    removed = probability > THRESHOLD
    return MetaClassifierResult(
        cv=cv, folds=folds, seed=seed, n_images=len(metrics_per_image), n_segments=len(data.iou0),
        **classifier_scores(data.iou0, probability),
        **fp_fn_counts(data.iou0, removed, data.image_index, components, gt_components, image_ids),
        image_index=data.image_index.tolist(), iou0=data.iou0.tolist(),
        probability=probability.tolist(), removed=removed.tolist())
