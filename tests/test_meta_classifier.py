"""The meta classifier: features, cross-validated probabilities, scores and FP/FN counts."""
import json
from collections.abc import Sequence

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold

from src.errors import MetaOodError
from src.meta_classifier import (MetaClassifierError, MetaClassifierResult, classifier_scores,
                                 cross_validation_splitter, fit_meta_classifier, fp_fn_counts, meta_classifier_result,
                                 out_of_fold_probabilities, segment_data, uncovered_counts)

C = 19
HEAT_KEYS = ["", "_in", "_bd", "_rel", "_rel_in", "_var", "_var_in", "_var_bd", "_var_rel", "_var_rel_in"]
# The metric keys of compute_metrics_components for C = 19, as docs/METHOD.md §4a lists them.
SPEC_KEYS = ({"iou", "iou0", "prc", "S", "S_in", "S_bd", "S_rel", "S_rel_in", "mean_x", "mean_y"}
             | {h + suffix for h in "EDV" for suffix in HEAT_KEYS}
             | {f"{name}{c}" for name in ("cprob", "ndist") for c in range(C)})


def golden_images(golden_dir):
    """Metrics and components maps of the golden cases where the reference did not fail."""
    cases = [np.load(p) for p in sorted(golden_dir.glob("metaseg_*.npz"))]
    cases = [g for g in cases if str(g["cm_error"]) == ""]
    assert len(cases) == 8, f"expected 8 golden metaseg cases without error in {golden_dir}"
    metrics = [{str(k): g[f"cm__{k}"] for k in g["cm__keys"]} for g in cases]
    return cases, metrics


def synthetic_metrics(seed, segments_per_image=(5, 6, 4)):
    """Metrics with the real key set; iou0 depends on a few of them (and on noise)."""
    rng = np.random.default_rng(seed)
    images = []
    for n in segments_per_image:
        m = {k: rng.normal(size=n) for k in sorted(SPEC_KEYS)}
        m["iou0"] = (m["E"] + 0.5 * m["S"] + 0.8 * rng.normal(size=n) > 0).astype(np.int64)
        m["prc"] = np.zeros(n, dtype=np.int64)
        images.append(m)
    return images


def plain_loop_probabilities(features, iou0, splits):
    """P(iou0 = 1) from sklearn's LogisticRegression fitted on each training fold."""
    probability = np.full(len(iou0), np.nan)
    for train, test in splits:
        model = LogisticRegression(solver="liblinear").fit(features[train], iou0[train])
        probability[test] = model.predict_proba(features[test])[:, 1]
    return probability


def all_but(index, n):
    return np.delete(np.arange(n), index)


# ---------------------------------------------------------------- features

def test_golden_metric_keys_give_75_sorted_features(golden_dir):
    cases, metrics = golden_images(golden_dir)
    for m in metrics:
        assert set(m) == SPEC_KEYS
    data = segment_data(metrics)
    assert data.names == sorted(SPEC_KEYS - {"iou", "iou0", "prc"})
    assert len(data.names) == 75
    counts = [len(g["cm__iou0"]) for g in cases]
    assert data.features.shape == (sum(counts), 75)
    np.testing.assert_array_equal(data.image_index, np.repeat(np.arange(8), counts))
    np.testing.assert_array_equal(data.iou0, np.concatenate([g["cm__iou0"] for g in cases]))


def test_features_are_standardized_over_all_segments(golden_dir):
    _, metrics = golden_images(golden_dir)
    data = segment_data(metrics)
    raw_std = np.array([np.concatenate([m[k] for m in metrics]).std() for k in data.names])
    assert np.all(raw_std > 0)
    np.testing.assert_allclose(data.features.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(data.features.std(axis=0), raw_std / (raw_std + 1e-10), rtol=1e-12)
    np.testing.assert_allclose(data.features.std(axis=0), 1, rtol=1e-5)
    sizes = np.concatenate([m["S"] for m in metrics]).astype(float)
    np.testing.assert_allclose(data.features[:, data.names.index("S")],
                               (sizes - sizes.mean()) / (sizes.std() + 1e-10), rtol=1e-12)


def test_constant_feature_becomes_zero_and_bad_metrics_are_named():
    metrics = synthetic_metrics(0)
    for m in metrics:
        m["S_in"] = np.full(len(m["iou0"]), 3.0)
    data = segment_data(metrics)
    assert np.all(data.features[:, data.names.index("S_in")] == 0)
    metrics[1]["S_rel"][0] = np.inf
    with pytest.raises(ValueError, match=r"metrics \['S_rel'\] hold NaN or infinite values"):
        segment_data(metrics)
    del metrics[2]["ndist3"]
    with pytest.raises(ValueError, match=r"image 2 differ in keys from image 0's \(missing \['ndist3'\]"):
        segment_data(metrics)


# ---------------------------------------------------------------- fitted on one set, applied to another

def test_a_classifier_fitted_on_one_set_decides_on_another_with_the_training_statistics():
    """A test split's segments: standardized with the training segments' means and deviations, not their own."""
    train, test = synthetic_metrics(3, (8, 9, 7)), synthetic_metrics(4, (6, 0, 5))
    for metrics in test:  # a shift that standardizing by the test set's own statistics would undo
        metrics["E"] += 1.5
    classifier = fit_meta_classifier(train)
    data = segment_data(train)
    raw_train = np.array([np.concatenate([m[k] for m in train]) for k in data.names]).T
    mean, std = raw_train.mean(axis=0), raw_train.std(axis=0)
    model = LogisticRegression(solver="liblinear").fit(data.features, data.iou0)
    for metrics in (test[0], test[2]):
        raw = np.array([metrics[k] for k in data.names], np.float64).T
        expected = model.predict_proba((raw - mean) / (std + 1e-10))[:, 1] > 0.5
        np.testing.assert_array_equal(classifier.removed(metrics), expected)
    assert classifier.removed(test[1]).shape == (0,) and 0 < sum(classifier.removed(m).sum() for m in test)
    with pytest.raises(MetaClassifierError, match="no predicted segment to fit it on"):
        fit_meta_classifier(synthetic_metrics(5, (0, 0)))
    del test[0]["E"]
    with pytest.raises(MetaClassifierError, match="metrics with the features"):
        classifier.removed(test[0])


# ---------------------------------------------------------------- cross-validation

def test_leave_one_out_equals_a_plain_loop_of_fits():
    data = segment_data(synthetic_metrics(1))
    n = len(data.iou0)
    expected = plain_loop_probabilities(data.features, data.iou0, [(all_but(i, n), [i]) for i in range(n)])
    np.testing.assert_allclose(out_of_fold_probabilities(data, "loo"), expected, rtol=1e-12, atol=0)
    np.testing.assert_allclose(out_of_fold_probabilities(data, "loo", n_jobs=2), expected, rtol=1e-12, atol=0)


def test_leave_one_image_out_never_trains_on_the_test_image():
    data = segment_data(synthetic_metrics(2))
    for train, test in cross_validation_splitter("image").split(data.features, data.iou0, data.image_index):
        assert len(set(data.image_index[test])) == 1
        assert not set(data.image_index[train]) & set(data.image_index[test])
        assert len(train) + len(test) == len(data.iou0)
    splits = [(np.flatnonzero(data.image_index != i), np.flatnonzero(data.image_index == i)) for i in range(3)]
    expected = plain_loop_probabilities(data.features, data.iou0, splits)
    np.testing.assert_allclose(out_of_fold_probabilities(data, "image"), expected, rtol=1e-12, atol=0)


def test_kfold_is_reproducible_and_uses_its_seed():
    data = segment_data(synthetic_metrics(3))
    first = out_of_fold_probabilities(data, "kfold", folds=3, seed=7)
    np.testing.assert_array_equal(out_of_fold_probabilities(data, "kfold", folds=3, seed=7), first)
    splits = KFold(n_splits=3, shuffle=True, random_state=7).split(data.features)
    np.testing.assert_allclose(first, plain_loop_probabilities(data.features, data.iou0, splits), rtol=1e-12)
    assert not np.array_equal(out_of_fold_probabilities(data, "kfold", folds=3, seed=8), first)


@pytest.mark.filterwarnings("ignore:Number of classes in training fold")
def test_single_class_training_fold_predicts_that_class():
    metrics = synthetic_metrics(4)
    for m in metrics:
        m["iou0"][:] = 0
    metrics[1]["iou0"][2] = 1
    data = segment_data(metrics)
    lone = int(np.flatnonzero(data.iou0)[0])
    probability = out_of_fold_probabilities(data, "loo")
    assert probability[lone] == 0.0  # its training fold holds only iou0 = 0
    n = len(data.iou0)
    others = [i for i in range(n) if i != lone]
    expected = plain_loop_probabilities(data.features, data.iou0, [(all_but(i, n), [i]) for i in others])
    np.testing.assert_allclose(probability[others], expected[others], rtol=1e-12)
    # leave one image out: the training fold without image 1 holds a single class
    image = out_of_fold_probabilities(data, "image")
    assert np.all(image[data.image_index == 1] == 0.0)
    assert np.all(image[data.image_index != 1] > 0.0)


@pytest.mark.parametrize("value", [0, 1])
def test_data_set_of_one_class_has_defined_probabilities_and_scores(value):
    metrics = synthetic_metrics(5)
    for m in metrics:
        m["iou0"][:] = value
    data = segment_data(metrics)
    probability = out_of_fold_probabilities(data, "loo")
    assert np.all(probability == value)
    assert classifier_scores(data.iou0, probability) == {"auroc": None, "auprc": None, "accuracy": 1.0}


def test_impossible_cross_validation_is_explained():
    data = segment_data(synthetic_metrics(6, segments_per_image=(4, 0)))
    with pytest.raises(ValueError, match="cv 'image' needs segments in at least 2 images, got 1"):
        out_of_fold_probabilities(data, "image")
    with pytest.raises(ValueError, match="needs 2 <= folds <= segments, got folds 5 and 4 segments"):
        out_of_fold_probabilities(data, "kfold", folds=5)
    with pytest.raises(ValueError, match="cv must be one of loo, image, kfold, got 'segments'"):
        out_of_fold_probabilities(data, "segments")


def test_impossible_cross_validation_names_the_flags_to_change():
    data = segment_data(synthetic_metrics(6, segments_per_image=(4, 0)))
    with pytest.raises(MetaOodError, match="lower --folds or choose another --cv"):
        out_of_fold_probabilities(data, "kfold", folds=5)
    with pytest.raises(MetaOodError, match="choose --cv loo or kfold"):
        out_of_fold_probabilities(data, "image")


def test_messages_name_the_given_image_ids():
    metrics = synthetic_metrics(8)
    del metrics[2]["ndist3"]
    with pytest.raises(MetaOodError, match=r"metrics of image 17 differ in keys from image 10's"):
        segment_data(metrics, image_ids=[10, 12, 17])
    with pytest.raises(MetaOodError, match=r"image 12: gt components map \(4, 4\) and predicted"):
        uncovered_counts([GT_0, GT_1], [PRED_0, PRED_0], [[REMOVED, REMOVED]], image_ids=[10, 12])[0]


def test_scores_by_hand():
    iou0 = np.array([0, 0, 1, 1, 0])
    probability = np.array([0.1, 0.6, 0.4, 0.9, 0.5])
    # AUROC: of the 6 (positive, negative) pairs 4 are ordered right; AP: 1/2 * 1 + 1/2 * 2/4;
    # decisions [0, 1, 0, 1, 0] (0.5 is kept): 3 of 5 right.
    assert classifier_scores(iou0, probability) == pytest.approx({"auroc": 4 / 6, "auprc": 0.75,
                                                                 "accuracy": 0.6})


# ---------------------------------------------------------------- FP / FN counts

# Image 0, predicted segments 1..4 (+k inner, -k boundary):
PRED_0 = np.array([
    [-1, -1, 0, 0, 0, 0, 0, 0, -2, -2],
    [-1, -1, 0, 0, 0, 0, 0, 0, -2, -2],
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    [0, 0, 0, -3, -3, -3, 0, 0, 0, 0],
    [0, 0, 0, -3, 3, -3, 0, 0, 0, -4],
    [0, 0, 0, -3, -3, -3, 0, 0, 0, 0],
], dtype=np.int32)
# Image 0, gt segments: 1 under predicted 1, 2 touching predicted 2 only diagonally, 3 under
# predicted 3, 4 under no prediction.
GT_0 = np.array([
    [0, -1, -1, 0, 0, 0, 0, 0, 0, 0],
    [0, -1, -1, 0, 0, 0, 0, 0, 0, 0],
    [0, 0, 0, 0, 0, 0, 0, -2, 0, 0],
    [0, 0, 0, 0, -3, -3, -3, 0, 0, 0],
    [-4, -4, 0, 0, -3, 3, -3, 0, 0, 0],
    [-4, -4, 0, 0, -3, -3, -3, 0, 0, 0],
], dtype=np.int32)
# Image 1: no predicted segment, one gt segment.
PRED_1 = np.zeros((4, 4), dtype=np.int32)
GT_1 = np.array([[0, 0, 0, 0], [0, -1, -1, 0], [0, -1, -1, 0], [0, 0, 0, 0]], dtype=np.int32)
# Predicted 1 (true positive) and 4 (false positive) removed; 2 (false positive) and 3 kept.
IOU0 = np.array([0, 1, 0, 1])
REMOVED = np.array([True, False, False, True])


def test_fp_fn_counts_by_hand():
    counts = fp_fn_counts(IOU0, REMOVED, [0, 0, 0, 0], [PRED_0, PRED_1], [GT_0, GT_1])
    assert counts == {
        "fp_before": 2,  # predicted 2 and 4
        "fn_before": 3,  # gt 2 (diagonal contact only) and 4 of image 0, gt 1 of image 1
        "fp_after": 1,  # predicted 2, kept
        "fn_after": 4,  # also gt 1 of image 0, overlapped only by the removed predicted 1
        "removed_true_positives": 1,  # predicted 1
    }


def test_uncovered_gt_segments_checks_its_inputs():
    assert uncovered_counts([GT_0], [PRED_0], [[[False, True, True, True]]])[0] == 3
    with pytest.raises(ValueError, match="image 0: components map has 4 segments but 3 kept flags"):
        uncovered_counts([GT_0], [PRED_0], [[[True, True, True]]])[0]
    with pytest.raises(ValueError, match=r"image 1: gt components map \(4, 4\) and predicted components"):
        uncovered_counts([GT_0, GT_1], [PRED_0, PRED_0], [[REMOVED, REMOVED]])[0]
    with pytest.raises(ValueError, match="1 gt and 2 predicted components maps, 2 kept-flag arrays"):
        uncovered_counts([GT_0], [PRED_0, PRED_1], [[REMOVED, []]])[0]


class CountedReads(Sequence):
    """Maps read from "disk" on access, as fp_removal passes them; counts the reads."""

    def __init__(self, maps):
        self.maps, self.reads = maps, 0

    def __len__(self):
        return len(self.maps)

    def __getitem__(self, k):
        found = self.maps[k]  # past the end: IndexError, the end of iteration, is no read
        self.reads += 1
        return found


def test_fp_fn_counts_read_every_map_once():
    components, gt_components = CountedReads([PRED_0, PRED_1]), CountedReads([GT_0, GT_1])
    counts = fp_fn_counts(IOU0, REMOVED, [0, 0, 0, 0], components, gt_components)
    assert (counts["fn_before"], counts["fn_after"]) == (3, 4)
    assert components.reads == gt_components.reads == 2


def test_golden_counts_before_removal_match_the_reference_metrics(golden_dir):
    cases, _ = golden_images(golden_dir)
    for g in cases:
        n = len(g["cm__iou0"])
        counts = fp_fn_counts(g["cm__iou0"], np.zeros(n, bool), np.zeros(n, int),
                              [g["cm_components"]], [g["mm_marked"]])
        assert counts["fp_before"] == counts["fp_after"] == g["cm__iou0"].sum()
        assert counts["fn_before"] == counts["fn_after"] == g["mm__iou0"].sum()


# ---------------------------------------------------------------- the whole stage

def test_result_on_golden_images_is_consistent_and_round_trips_through_json(golden_dir):
    cases, metrics = golden_images(golden_dir)
    result = meta_classifier_result(metrics, [g["cm_components"] for g in cases],
                                    [g["mm_marked"] for g in cases], cv="image")
    data = segment_data(metrics)
    probability = np.array(result.probability)
    np.testing.assert_array_equal(probability, out_of_fold_probabilities(data, "image"))
    assert result.removed == (probability > 0.5).tolist()
    assert result.iou0 == data.iou0.tolist() and result.image_index == data.image_index.tolist()
    iou0, removed = data.iou0, probability > 0.5
    assert result.fp_after == np.sum((iou0 == 1) & ~removed)
    assert result.removed_true_positives == np.sum((iou0 == 0) & removed)
    assert result.fn_before == sum(g["mm__iou0"].sum() for g in cases)
    assert result.fn_after >= result.fn_before
    assert [len(k) for k in result.kept_per_image()] == [len(g["cm__iou0"]) for g in cases]
    assert (result.auroc, result.auprc, result.accuracy) == tuple(classifier_scores(iou0, probability).values())
    assert MetaClassifierResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result


def test_result_needs_matching_inputs():
    metrics = synthetic_metrics(7)
    with pytest.raises(ValueError, match="metrics of 3 images, 2 predicted and 3 gt components maps"):
        meta_classifier_result(metrics, [PRED_0, PRED_1], [GT_0, GT_1, GT_1])
