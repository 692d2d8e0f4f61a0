"""MetaSeg metrics on seeded random inputs: invariants, an independent numpy/scipy
re-derivation of docs/METHOD.md §4, many segments, the entropy map, input errors, and the
message when the extension is not compiled."""
import importlib
import sys

import numpy as np
import pytest
from scipy import ndimage
from scipy.stats import entropy

from src.metaseg import compute_metrics_components, compute_metrics_mask
from src.scores import entropy_mask, normalized_entropy

C = 19
EIGHT = np.ones((3, 3), bool)
EPS32 = np.finfo(np.float32).eps


def random_probs(rng, H, W, zeros=False):
    logits = rng.normal(0, 3, (C, H, W))
    probs = np.exp(logits - logits.max(0))
    if zeros:
        probs[rng.random((C, H, W)) < 0.2] = 0
    return (probs / probs.sum(0)).astype(np.float32)


def random_blobs(rng, H, W, share):
    """Smooth random blobs plus scattered single pixels, covering about `share` of the image."""
    field = ndimage.gaussian_filter(rng.random((H, W)), 2)
    blobs = field > np.quantile(field, 1 - share)
    return blobs | (rng.random((H, W)) < 0.01)


def random_image(seed, H=40, W=60):
    rng = np.random.default_rng(seed)
    gt_train = np.zeros((H, W), np.uint8)
    gt_train[random_blobs(rng, H, W, 0.2)] = 2
    gt_train[rng.random((H, W)) < 0.05] = 255
    gt_train[: H // 8] = 255
    ood_mask = random_blobs(rng, H, W, 0.25).astype(np.uint8)
    gt_label = rng.integers(0, 40, (H, W), dtype=np.uint8)
    return random_probs(rng, H, W), gt_train, gt_label, ood_mask, 2


# ---------------------------------------------------------------- independent re-derivation

def neighbour_views(mask, values):
    """For each of the 8 offsets: (neighbour inside the image and not in mask, neighbour's value)."""
    H, W = mask.shape
    outside = np.pad(~mask, 1, constant_values=False)
    padded = np.pad(values, 1)
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            if di or dj:
                yield outside[1 + di:1 + di + H, 1 + dj:1 + dj + W], padded[1 + di:1 + di + H, 1 + dj:1 + dj + W]


def expected_metrics(probs, mask, other, gt_label):
    """The per-segment quantities of docs/METHOD.md §4, recomputed with numpy and scipy.ndimage."""
    labels, n = ndimage.label(mask, EIGHT)
    pred = probs.argmax(0)
    boundary = np.zeros(mask.shape, bool)
    neighbour_classes = np.zeros((n, C))
    for outside, classes in neighbour_views(mask, pred):
        hit = (labels > 0) & outside
        boundary |= hit
        np.add.at(neighbour_classes, (labels[hit] - 1, classes[hit]), 1)
    other_labels, _ = ndimage.label(other & ~mask, EIGHT)
    other_sizes = np.bincount(other_labels.ravel())
    p64 = probs.astype(np.float64)
    ordered = np.sort(p64, axis=0)
    heat = {"E": (p64 * np.log(p64 + EPS32)).sum(0) / np.log(1 / C),
            "D": 1 - ordered[-1] + ordered[-2], "V": 1 - ordered[-1]}
    rows, cols = np.indices(mask.shape)
    out = []
    for k in range(1, n + 1):
        seg = labels == k
        I = (seg & other).sum()
        touched = np.unique(other_labels[ndimage.binary_dilation(seg, EIGHT) & (other_labels > 0)])
        union = seg.sum() + other_sizes[touched].sum()
        pairs = neighbour_classes[k - 1].sum()
        first = np.flatnonzero(seg.ravel())[0]
        e = {"S": seg.sum(), "S_bd": (seg & boundary).sum(), "iou": I / union if I else 0.0, "I": I,
             "mean_x": rows[seg].mean(), "mean_y": cols[seg].mean(),
             "cprob": p64[:, seg].mean(1), "ndist": neighbour_classes[k - 1] / max(pairs, 1),
             "S_c": np.bincount(pred[seg], minlength=C), "label_class": gt_label.ravel()[first]}
        for h, values in heat.items():
            e[h], e[h + "_var"] = values[seg].mean(), values[seg].var()
            e[h + "_bd"] = values[seg & boundary].mean()
            inner = seg & ~boundary
            e[h + "_in"] = values[inner].mean() if inner.any() else 0.0
        out.append(e)
    return labels, boundary, out


@pytest.mark.parametrize("seed", range(4))
def test_predicted_segments_match_rederivation(seed):
    probs, gt_train, _, ood_mask, ood_index = random_image(seed)
    seg = (ood_mask == 1) & (gt_train != 255)
    metrics, components = compute_metrics_components(probs, gt_train, ood_mask, ood_index)
    labels, boundary, expected = expected_metrics(probs, seg, gt_train == ood_index, gt_train)
    assert len(expected) > 3
    np.testing.assert_array_equal(np.abs(components), labels)
    np.testing.assert_array_equal(components < 0, boundary)
    for k, e in enumerate(expected):
        assert metrics["S"][k] == e["S"] and metrics["S_bd"][k] == e["S_bd"]
        assert metrics["iou0"][k] == (e["I"] == 0) and metrics["prc"][k] == 0
        for key in ("iou", "mean_x", "mean_y", "E", "E_in", "E_bd", "E_var", "D", "D_in", "D_var", "V", "V_bd"):
            assert metrics[key][k] == pytest.approx(e[key], rel=1e-5, abs=1e-6), key
        got_cprob = [metrics[f"cprob{c}"][k] for c in range(C)]
        got_ndist = [metrics[f"ndist{c}"][k] for c in range(C)]
        np.testing.assert_allclose(got_cprob, e["cprob"], rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(got_ndist, e["ndist"], rtol=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_ground_truth_segments_match_rederivation(seed):
    probs, gt_train, gt_label, ood_mask, ood_index = random_image(seed)
    gt = gt_train == ood_index
    metrics, components = compute_metrics_mask(probs, ood_mask, gt_train, gt_label, ood_index)
    labels, boundary, expected = expected_metrics(probs, gt, (ood_mask == 1) & (gt_train != 255), gt_label)
    assert len(expected) > 3
    np.testing.assert_array_equal(np.abs(components), labels)
    np.testing.assert_array_equal(components < 0, boundary)
    for k, e in enumerate(expected):
        assert (metrics["S"][k], metrics["S_bd"][k]) == (e["S"], e["S_bd"])
        assert metrics["label_class"][k] == e["label_class"] and metrics["train_class"][k] == 255
        assert metrics["iou"][k] == pytest.approx(e["iou"], rel=1e-12)
        assert metrics["rec"][k] == pytest.approx(e["I"] / e["S"], rel=1e-12)
        assert [metrics[f"S_{c}"][k] for c in range(C)] == e["S_c"].tolist()


# ---------------------------------------------------------------- invariants

@pytest.mark.parametrize("seed", range(10, 16))
@pytest.mark.parametrize("function", ["components", "mask"])
def test_invariants(seed, function):
    rng = np.random.default_rng(seed)
    H, W = rng.integers(1, 50, 2)
    probs, gt_train, gt_label, ood_mask, ood_index = random_image(seed, H, W)
    if function == "components":
        metrics, components = compute_metrics_components(probs, gt_train, ood_mask, ood_index)
        mask = (ood_mask == 1) & (gt_train != 255)
    else:
        metrics, components = compute_metrics_mask(probs, ood_mask, gt_train, gt_label, ood_index)
        mask = gt_train == ood_index
    _, n = ndimage.label(mask, EIGHT)
    assert components.dtype == np.int32 and components.shape == (H, W)
    assert all(len(values) == n for values in metrics.values())
    assert set(np.unique(np.abs(components))) - {0} == set(range(1, n + 1))
    np.testing.assert_array_equal(metrics["S"], metrics["S_in"] + metrics["S_bd"])
    np.testing.assert_array_equal(metrics["S"], np.bincount(np.abs(components).ravel(), minlength=n + 1)[1:])
    assert ((0 <= metrics["iou"]) & (metrics["iou"] <= 1)).all()
    np.testing.assert_array_equal(metrics["iou0"], metrics["iou"] == 0)
    cprob = np.array([metrics[f"cprob{c}"] for c in range(C)])
    np.testing.assert_allclose(cprob.sum(0), 1, atol=1e-6)
    if function == "components":
        ndist = np.array([metrics[f"ndist{c}"] for c in range(C)]).sum(0)
        assert np.all(np.isclose(ndist, 1) | (ndist == 0))
        np.testing.assert_array_equal(ndist == 0, metrics["S_bd"] == 0)


def test_more_than_32767_segments():
    """A 258 x 512 grid of isolated pixels: segment ids 1..N in scan order, every pixel a boundary."""
    H, W = 516, 1024
    rng = np.random.default_rng(0)
    probs = random_probs(rng, H, W)
    grid = np.zeros((H, W), np.uint8)
    grid[::2, ::2] = 1
    n = 258 * 512
    expected = np.zeros((H, W), np.int32)
    expected[::2, ::2] = -np.arange(1, n + 1).reshape(258, 512)
    gt_train = np.where(grid == 1, 1, 0).astype(np.uint8)
    metrics, components = compute_metrics_components(probs, np.zeros((H, W), np.uint8), grid, 1)
    np.testing.assert_array_equal(components, expected)
    assert len(metrics["S"]) == n and (metrics["S"] == 1).all() and (metrics["S_bd"] == 1).all()
    assert (metrics["S_rel"] == 1).all() and (metrics["iou0"] == 1).all()
    gt_metrics, gt_components = compute_metrics_mask(probs, grid, gt_train, gt_train, 1)
    np.testing.assert_array_equal(gt_components, expected)
    assert (gt_metrics["iou"] == 1).all() and (gt_metrics["label_class"] == 1).all()


def test_other_float_dtypes_and_layouts_give_the_same_metrics():
    probs, gt_train, gt_label, ood_mask, ood_index = random_image(3)
    ref, ref_map = compute_metrics_components(probs, gt_train, ood_mask, ood_index)
    transposed = np.asfortranarray(probs.astype(np.float64))
    got, got_map = compute_metrics_components(transposed, gt_train, ood_mask.astype(bool), ood_index)
    np.testing.assert_array_equal(got_map, ref_map)
    assert list(got) == list(ref)
    for key in ref:
        np.testing.assert_array_equal(got[key], ref[key])


# ---------------------------------------------------------------- entropy

def test_normalized_entropy_equals_scipy_with_zero_probabilities():
    probs = random_probs(np.random.default_rng(5), 30, 70, zeros=True)
    probs[:, 0, 0] = 0
    probs[3, 0, 0] = 1  # one-hot: entropy 0
    probs[:, 0, 1] = 1 / C  # uniform: entropy 1
    values = normalized_entropy(probs)
    assert values.dtype == np.float32 and values.shape == (30, 70)
    np.testing.assert_allclose(values, entropy(probs.astype(np.float64), axis=0) / np.log(C), atol=1e-6)
    assert values[0, 0] == 0 and values[0, 1] == pytest.approx(1, abs=1e-6)
    mask = entropy_mask(probs, 0.5)
    assert mask.dtype == np.uint8
    np.testing.assert_array_equal(mask, values >= 0.5)


# ---------------------------------------------------------------- errors

@pytest.mark.parametrize("call, message", [
    (lambda p, m, g: compute_metrics_components(p[0], g, m, 2), "probs must be a (C, H, W)"),
    (lambda p, m, g: compute_metrics_components(p, g[:-1], m, 2), "gt_train must have the (H, W) shape"),
    (lambda p, m, g: compute_metrics_components(p, g, m.astype(np.float32), 2), "ood_mask must hold integers"),
    (lambda p, m, g: compute_metrics_components(p, g, m, 255), "ood_index must be a train id"),
    (lambda p, m, g: compute_metrics_mask(p, m, g, g[:, :-1], 2), "gt_label must have the (H, W) shape"),
    (lambda p, m, g: compute_metrics_mask(p, m.astype(np.int64) * 300, g, g, 2), "ood_mask must hold integers"),
])
def test_bad_input_is_named(call, message):
    probs, gt_train, _, ood_mask, _ = random_image(0, 8, 9)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call(probs, ood_mask, gt_train)


def test_missing_extension_says_how_to_compile(monkeypatch):
    monkeypatch.delitem(sys.modules, "src.metaseg")
    monkeypatch.setitem(sys.modules, "src.metaseg.metrics", None)  # the import of the extension fails
    with pytest.raises(ImportError) as info:
        importlib.import_module("src.metaseg")
    assert "cd src/metaseg && python metrics_setup.py build_ext --inplace" in str(info.value)
    assert "bash preparation/setup.sh" in str(info.value)
