"""Precision-recall curve from histogram counts: scikit-learn on the expanded samples, the
reference's curve (golden data), consistency with the AUPRC of both protocols."""
import numpy as np
import pytest
from sklearn.metrics import precision_recall_curve

from src.pixel_metrics import exact_metrics, pr_curve_from_counts

GOLDEN_CASES = ["pixel_s01_laf_baseline", "pixel_s02_laf_trained", "pixel_s03_separated"]


def _expanded(counts_in, counts_out):
    """Labels (OoD = 1) and scores (bin index) of the samples the counts stand for."""
    bins = np.arange(len(counts_in), dtype=np.float64)
    scores = np.r_[np.repeat(bins, counts_in), np.repeat(bins, counts_out)]
    labels = np.r_[np.zeros(np.sum(counts_in)), np.ones(np.sum(counts_out))]
    return labels, scores


@pytest.mark.parametrize("seed", range(5))
def test_equals_sklearn_on_expanded_counts(seed):
    rng = np.random.default_rng(seed)
    # Empty bins (of one class or of both) included: they are no threshold.
    counts_in = rng.integers(0, 6, 12) * (rng.random(12) < 0.7)
    counts_out = rng.integers(0, 4, 12) * (rng.random(12) < 0.6)
    counts_in[0], counts_out[-1] = 3, 2
    precision, recall = pr_curve_from_counts(counts_in, counts_out)
    want_precision, want_recall, _ = precision_recall_curve(*_expanded(counts_in, counts_out))
    np.testing.assert_array_equal(precision, want_precision)
    np.testing.assert_array_equal(recall, want_recall)


def test_ends_at_recall_zero_precision_one_and_recall_decreases():
    precision, recall = pr_curve_from_counts([5, 3, 0, 1], [0, 1, 2, 4])
    assert (recall[-1], precision[-1]) == (0.0, 1.0)
    assert recall[0] == 1.0 and precision[0] == pytest.approx(7 / 16)
    assert np.all(np.diff(recall) <= 0)


def test_step_area_is_the_exact_auprc():
    rng = np.random.default_rng(7)
    counts_in, counts_out = rng.integers(0, 50, 40), rng.integers(0, 20, 40)
    precision, recall = pr_curve_from_counts(counts_in, counts_out)
    area = -np.sum(np.diff(recall) * precision[:-1])
    assert area == pytest.approx(exact_metrics(counts_in, counts_out)["auprc"], abs=1e-15)


@pytest.mark.parametrize("case", GOLDEN_CASES)
def test_paper_rescaled_counts_give_the_reference_curve(golden_dir, case):
    # The reference drew its PR curve from counts rescaled to 1e7 samples split by class ratio.
    ref = np.load(golden_dir / f"{case}.npz")
    counts_in, counts_out = ref["in"], ref["out"]
    ratio_in = counts_in.sum() / (counts_in.sum() + counts_out.sum())
    rescaled = [np.floor(c / c.sum() * 1e7 * r).astype(np.int64)
                for c, r in ((counts_in, ratio_in), (counts_out, 1 - ratio_in))]
    precision, recall = pr_curve_from_counts(*rescaled)
    np.testing.assert_allclose(precision, ref["pr_precision"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(recall, ref["pr_recall"], rtol=0, atol=1e-12)


def test_rejects_counts_without_ood_pixels():
    with pytest.raises(ValueError, match="no OoD pixel"):
        pr_curve_from_counts([1, 2, 3], [0, 0, 0])
