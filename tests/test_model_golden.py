"""The paper networks compute the reference's function: rule-based weights (golden/models/README.md),
loaded strictly, give the reference logits and probabilities on the golden inputs."""
import hashlib
import json
import zlib

import numpy as np
import pytest
import torch

from src.model import build_network
from tests.model_testing import read_manifest, two_threads  # noqa: F401 (autouse)

CONV_GAIN = {"DeepLabV3+_WideResNet38": 1.0, "DualGCNNet_res50": 0.6}
CASES = ["seed0_64x128", "seed1_72x136"]


def rule_tensor(key, shape, gain):
    """The README's weight rule; `key` without the manifest's key prefix."""
    shape = tuple(int(s) for s in shape)
    if key.endswith("num_batches_tracked"):
        return np.zeros(shape, dtype=np.int64)
    rng = np.random.default_rng(zlib.crc32(key.encode("utf-8")))
    base = rng.standard_normal(size=shape).astype(np.float32).astype(np.float64)
    if key.endswith("running_var"):
        out = 1.0 + 0.1 * np.abs(base)
    elif key.endswith("running_mean"):
        out = 0.1 * base
    elif len(shape) >= 2:
        out = base * np.sqrt(gain / float(np.prod(shape[1:])))
    elif len(shape) == 1 and key.endswith("weight"):
        out = 1.0 + 0.1 * base
    elif len(shape) == 1 and key.endswith("bias"):
        out = 0.1 * base
    else:
        raise ValueError(f"no weight rule for {key}")
    return out.astype(np.float32)


def rule_state_dict(manifest):
    """Keys exactly as in the manifest (with its prefix), in its order."""
    gain, prefix = CONV_GAIN[manifest["model_name"]], manifest["key_prefix"]
    return {key: rule_tensor(key.removeprefix(prefix), shape, gain)
            for key, shape, _, _ in manifest["state_dict"]}


def state_dict_sha256(weights):
    digest = hashlib.sha256()
    for value in weights.values():
        digest.update(np.ascontiguousarray(value).astype(value.dtype.newbyteorder("<")).tobytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def rule_check(golden_dir):
    return json.loads((golden_dir / "models" / "weight_rule_check.json").read_text())["models"]


@pytest.fixture(scope="module", params=list(CONV_GAIN))
def golden_network(request, layouts_dir, rule_check):
    """(name, rule weights, network in eval mode with those weights loaded strictly)."""
    name = request.param
    manifest = read_manifest(layouts_dir, name)
    weights = rule_state_dict(manifest)
    model = build_network(name, manifest["num_classes"])
    prefix = manifest["key_prefix"]
    model.load_state_dict({k.removeprefix(prefix): torch.from_numpy(v) for k, v in weights.items()},
                          strict=True)
    return name, weights, model.eval()


def test_rule_weights_match_reference(golden_network, rule_check):
    name, weights, _ = golden_network
    check = rule_check[name]
    if state_dict_sha256(weights) != check["state_dict_sha256"]:
        wrong = [k for k, c in check["per_key"].items()
                 if k not in weights or not np.isclose(weights[k].sum(dtype=np.float64), c["sum_f64"])
                 or weights[k].flat[0] != np.float32(c["first"]) or weights[k].flat[-1] != np.float32(c["last"])]
        pytest.fail(f"rule weights of {name} differ from the reference's; first keys: {wrong[:5]}")
    assert list(weights) == list(check["per_key"])


def test_loaded_weights_are_the_rule_weights(golden_network):
    _, weights, model = golden_network
    loaded = model.state_dict()
    assert len(loaded) == len(weights)
    for (key, expected), (_, got) in zip(weights.items(), loaded.items()):
        assert np.array_equal(got.numpy(), expected), key


@pytest.mark.parametrize("case", CASES)
def test_logits_match_reference(golden_network, golden_dir, case):
    name, _, model = golden_network
    golden = np.load(golden_dir / "models" / f"{name}__{case}.npz")
    with torch.no_grad():
        logits = model(torch.from_numpy(golden["x"])).float()
    assert logits.shape == golden["logits"].shape
    np.testing.assert_allclose(logits.numpy(), golden["logits"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(torch.softmax(logits, dim=1).numpy(), golden["probs"], rtol=0, atol=2e-5)
