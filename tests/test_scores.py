"""Pixel OoD scores against their formulas, on known and random inputs."""
import numpy as np
import pytest
from scipy.special import logsumexp, softmax

from src import scores
from src.scores import (SCORE_RANGES, SCORES, energy_score, max_logit_score, max_softmax_score,
                        normalized_entropy, score_map)

# Height not a multiple of the row band, so that the last, shorter band is exercised.
SHAPE = (19, 2 * scores.ROWS_PER_BAND + 5, 23)


def _random_logits(seed=0, scale=3.0):
    return (np.random.default_rng(seed).normal(size=SHAPE) * scale).astype(np.float32)


def _entropy_float64(probs):
    p = probs.astype(np.float64)
    plogp = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return -plogp.sum(axis=0) / np.log(p.shape[0])


def test_uniform_softmax_has_entropy_one():
    probs = np.full(SHAPE, 1 / 19, np.float32)
    np.testing.assert_allclose(normalized_entropy(probs), 1.0, rtol=0, atol=1e-6)
    assert normalized_entropy(probs).max() <= 1.0


def test_one_hot_has_entropy_zero_not_nan():
    probs = np.zeros(SHAPE, np.float32)
    probs[7] = 1.0
    np.testing.assert_array_equal(normalized_entropy(probs), 0.0)


def test_entropy_of_random_softmax_with_exact_zeros():
    probs = softmax(_random_logits(), axis=0).astype(np.float32)
    probs[3, 1, :] = 0.0  # 0 log 0 = 0 in a band with zeros
    probs[4, -1, -1] = 0.0  # and in the last, shorter band
    got = normalized_entropy(probs)
    assert got.dtype == np.float32 and got.shape == SHAPE[1:]
    np.testing.assert_allclose(got, _entropy_float64(probs), rtol=0, atol=1e-6)


def test_entropy_of_two_classes_by_hand():
    # p = (1/4, 3/4): H = -(1/4 log 1/4 + 3/4 log 3/4) / log 2 = 2 - 3/4 log2 3.
    probs = np.array([0.25, 0.75], np.float32).reshape(2, 1, 1)
    assert normalized_entropy(probs)[0, 0] == pytest.approx(2 - 0.75 * np.log2(3), abs=1e-6)


def test_msp():
    probs = softmax(_random_logits(1), axis=0).astype(np.float32)
    np.testing.assert_allclose(max_softmax_score(probs), 1 - probs.max(axis=0), rtol=0, atol=1e-7)
    assert max_softmax_score(np.full(SHAPE, 1 / 19, np.float32)) == pytest.approx(18 / 19)


def test_maxlogit():
    logits = _random_logits(2)
    np.testing.assert_array_equal(max_logit_score(logits), -logits.max(axis=0))


@pytest.mark.parametrize("scale", [3.0, 300.0])
def test_energy(scale):
    # scale 300: exp(logit) overflows float32; the shifted form must not.
    logits = _random_logits(3, scale)
    expected = -logsumexp(logits.astype(np.float64), axis=0)
    np.testing.assert_allclose(energy_score(logits), expected, rtol=1e-6, atol=1e-5)


def test_energy_of_equal_logits_by_hand():
    logits = np.full((19, 2, 3), 2.0, np.float32)
    np.testing.assert_allclose(energy_score(logits), -(2.0 + np.log(19)), rtol=1e-6)


def test_bounded_scores_stay_in_their_histogram_range():
    probs = softmax(_random_logits(4, 10.0), axis=0).astype(np.float32)
    assert SCORE_RANGES.keys() == SCORES.keys()
    for name in ("entropy", "msp"):
        low, high = SCORE_RANGES[name]
        values = score_map(name, probs=probs)
        assert low <= values.min() and values.max() <= high


def test_score_map_dispatches_on_the_right_input():
    logits = _random_logits(5)
    probs = softmax(logits, axis=0).astype(np.float32)
    np.testing.assert_array_equal(score_map("entropy", probs, logits), normalized_entropy(probs))
    np.testing.assert_array_equal(score_map("energy", probs, logits), energy_score(logits))


def test_score_map_errors():
    probs = np.full(SHAPE, 1 / 19, np.float32)
    with pytest.raises(ValueError, match="unknown score 'odin'"):
        score_map("odin", probs)
    with pytest.raises(ValueError, match="needs the network's logits.*--store_logits"):
        score_map("maxlogit", probs=probs)
    with pytest.raises(ValueError, match=r"shape \(C, H, W\)"):
        normalized_entropy(probs[0])


def test_softmax_equals_torch_and_scipy_and_keeps_extreme_logits_finite():
    import torch
    logits = _random_logits(seed=4, scale=30.0)
    logits[:, 0, 0] = [1e4] + [-1e4] * 18  # exp would overflow without the shift
    probs = scores.softmax(logits)
    assert probs.dtype == np.float32 and probs.shape == SHAPE and np.isfinite(probs).all()
    np.testing.assert_allclose(probs, softmax(logits.astype(np.float64), axis=0), rtol=0, atol=3e-7)
    np.testing.assert_allclose(probs, torch.softmax(torch.from_numpy(logits), 0).numpy(), rtol=0, atol=3e-7)
    np.testing.assert_allclose(probs.sum(axis=0), 1.0, atol=2e-6)


def test_threshold_mask_is_the_entropy_mask():
    probs = scores.softmax(_random_logits(seed=5, scale=2.0))
    mask = scores.entropy_mask(probs, 0.7)
    assert mask.dtype == np.uint8 and 0 < mask.sum() < mask.size
    np.testing.assert_array_equal(scores.threshold_mask(normalized_entropy(probs), 0.7), mask)
