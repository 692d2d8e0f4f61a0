"""MetaSeg metrics and entropy mask against the reference's golden outputs (tests/golden/README.md §1)."""
import json

import numpy as np
import pytest

from src.metaseg import compute_metrics_components, compute_metrics_mask
from src.scores import entropy_mask

RTOL, ATOL = 1e-5, 1e-6


def golden_cases(golden_dir):
    index = golden_dir / "index.json"
    return [case["name"] for case in json.loads(index.read_text())["metaseg"]] if index.is_file() else []


def pytest_generate_tests(metafunc):
    if "case" in metafunc.fixturenames:  # without the golden data, test_there_are_nine_cases fails and says why
        from conftest import TESTS
        metafunc.parametrize("case", golden_cases(TESTS / "golden"))


@pytest.fixture
def golden(golden_dir, case):
    return dict(np.load(golden_dir / f"{case}.npz"))


def call(golden, prefix):
    probs, gt_train, ood_mask = golden["probs"], golden["gt_train"], golden["ood_mask"]
    ood_index = int(golden["ood_index"])
    if prefix == "cm":
        return compute_metrics_components(probs, gt_train, ood_mask, ood_index)
    return compute_metrics_mask(probs, ood_mask, gt_train, golden["gt_label"], ood_index)


def test_there_are_nine_cases(golden_dir):
    assert len(golden_cases(golden_dir)) == 9


def test_entropy_mask_equals_reference(golden):
    mask = entropy_mask(golden["probs"], float(golden["t"]))
    assert mask.dtype == np.uint8
    np.testing.assert_array_equal(mask, golden["ood_mask"])


@pytest.mark.parametrize("prefix, map_key", [("cm", "cm_components"), ("mm", "mm_marked")])
def test_metrics_equal_reference(golden, prefix, map_key):
    if str(golden[f"{prefix}_error"]):
        pytest.skip("the reference raised here; the defined values are tested below")
    metrics, components = call(golden, prefix)
    keys = [str(k) for k in golden[f"{prefix}__keys"]]
    assert list(metrics) == keys
    assert components.dtype == np.int32
    np.testing.assert_array_equal(components, golden[map_key])
    for key in keys:
        ref, got = golden[f"{prefix}__{key}"], np.asarray(metrics[key])
        assert got.shape == ref.shape, key
        if ref.dtype.kind == "i":
            assert got.dtype.kind == "i", key
            np.testing.assert_array_equal(got, ref, err_msg=key)
        else:
            np.testing.assert_allclose(got, ref, rtol=RTOL, atol=ATOL, err_msg=key)


@pytest.fixture
def full_image(golden_dir):
    return dict(np.load(golden_dir / "metaseg_s09_fs_crash_full_image.npz"))


def test_full_image_segment_has_defined_values(full_image):
    """The reference divided by zero (no boundary pixel); ratios use max(S_bd, 1), boundary means are 0."""
    assert "ZeroDivisionError" in str(full_image["cm_error"])
    metrics, components = call(full_image, "cm")
    H, W = full_image["gt_train"].shape
    np.testing.assert_array_equal(components, np.ones((H, W), np.int32))
    assert metrics["S"].tolist() == [H * W] and metrics["S_bd"].tolist() == [0]
    assert metrics["S_in"].tolist() == [H * W]
    assert metrics["S_rel"].tolist() == [H * W] and metrics["S_rel_in"].tolist() == [H * W]
    gt = full_image["gt_train"] == int(full_image["ood_index"])
    assert metrics["iou"][0] == pytest.approx(gt.sum() / (H * W))
    for c in range(full_image["probs"].shape[0]):
        assert metrics[f"ndist{c}"][0] == 0
        assert metrics[f"cprob{c}"][0] == pytest.approx(full_image["probs"][c].astype(np.float64).mean())
    for h in ("E", "D", "V"):
        assert metrics[f"{h}_bd"][0] == 0 and metrics[f"{h}_var_bd"][0] == 0
        assert metrics[f"{h}_in"][0] == pytest.approx(metrics[h][0])
        assert metrics[f"{h}_rel"][0] == pytest.approx(metrics[h][0] * H * W)
        assert metrics[f"{h}_var_rel_in"][0] == pytest.approx(metrics[f"{h}_var_in"][0] * H * W)
    assert all(np.isfinite(np.asarray(v, np.float64)).all() for v in metrics.values())
