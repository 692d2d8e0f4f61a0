"""Checkpoint files in every accepted container load strictly and identically; anything that does not
fit the network is refused with a message naming the file and the keys."""

import numpy as np
import pytest
import torch

from src.model import (NETWORKS, CheckpointError, checkpoint_state_dict, load_network, read_checkpoint,
                       unwrapped)
from tests.model_testing import read_manifest, two_threads  # noqa: F401 (autouse)

SMALL = "DeepLabV3+_MobileNetV3"
CRITERION_KEY = "module.criterion.nll_loss.weight"


@pytest.fixture(scope="module")
def source():
    """A small network with random weights and non-trivial BN statistics: the weights to save."""
    torch.manual_seed(0)
    model = load_network(SMALL, 19, None, device="cpu")
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            buffer.copy_(torch.rand_like(buffer.float()).to(buffer.dtype) if "running" in name
                         else torch.full_like(buffer, 7))
    return model


def prefixed(weights, prefix="module."):
    return {prefix + k: v for k, v in weights.items()}


def nvidia_container(weights):
    """NVIDIA's cityscapes_best.pth: prefixed keys, the loss weights first, numpy mean IoU, command line."""
    state = {CRITERION_KEY: torch.ones(19), **prefixed(weights)}
    return {"state_dict": state, "optimizer": {"state": {}, "param_groups": [{"lr": 0.002, "params": [0, 1]}]},
            "epoch": 175, "mean_iu": np.float64(0.8143), "command": "python train.py --arch network.deepv3.DeepWV3Plus"}


def ours_container(weights):
    return {"epoch": 4, "state_dict": weights, "optimizer_state_dict": {"state": {}, "param_groups": []},
            "loss": 0.25, "config": {"MODEL": SMALL, "pareto_alpha": 0.9, "init_ckpt": None}}


CONTAINERS = {
    "ours": ours_container,
    "ours_prefixed": lambda w: ours_container(prefixed(w)),
    "meta_ood_dualgcn_style": lambda w: {"state_dict": w},
    "gald_bare": lambda w: w,
    "bare_prefixed": prefixed,
    "nvidia": nvidia_container,
}


def save(obj, path, **kwargs):
    torch.save(obj, path, **kwargs)
    return path


def assert_same_weights(model, weights):
    got = model.state_dict()
    assert list(got) == list(weights)
    for key, value in weights.items():
        assert torch.equal(got[key], value), key


@pytest.mark.parametrize("container", list(CONTAINERS))
def test_every_container_loads_the_same_weights(container, source, tmp_path):
    weights = source.state_dict()
    path = save(CONTAINERS[container](weights), tmp_path / "ckpt.pth")
    model = load_network(SMALL, 19, path, device="cpu")
    assert_same_weights(model, weights)
    assert not model.training


def test_nvidia_file_of_2019_loads(source, tmp_path):
    """Legacy (pre-zip) serialization with mean_iu pickled under numpy 1.x's module name."""
    raw_path = save(nvidia_container(source.state_dict()), tmp_path / "raw.pth",
                    _use_new_zipfile_serialization=False)
    raw = raw_path.read_bytes()
    assert b"numpy._core.multiarray" in raw
    path = tmp_path / "cityscapes_best.pth"
    path.write_bytes(raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    assert read_checkpoint(path)["mean_iu"] == pytest.approx(0.8143)
    assert_same_weights(load_network(SMALL, 19, path, device="cpu"), source.state_dict())


def test_train_flag_and_random_init():
    assert load_network(SMALL, 5, None, device="cpu", train=True).training
    model = load_network(SMALL, 5, None, device=torch.device("cpu"))
    assert not model.training and next(model.parameters()).device.type == "cpu"
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 5, 64, 64)


def test_missing_num_batches_tracked_is_filled_in(source, tmp_path):
    """Files from before torch 0.4.1 have no num_batches_tracked; BatchNorm restores it as 0."""
    weights = {k: v for k, v in source.state_dict().items() if not k.endswith("num_batches_tracked")}
    model = load_network(SMALL, 19, save({"state_dict": weights}, tmp_path / "old.pth"), device="cpu")
    for key, value in model.state_dict().items():
        expected = torch.tensor(0) if key.endswith("num_batches_tracked") else weights[key]
        assert torch.equal(value, expected), key


def failure(weights, tmp_path, num_classes=19):
    path = save({"state_dict": weights}, tmp_path / "bad_checkpoint.pth")
    with pytest.raises(CheckpointError) as err:
        load_network(SMALL, num_classes, path, device="cpu")
    message = str(err.value)
    assert str(path) in message
    return message


def test_missing_key_is_refused(source, tmp_path):
    weights = source.state_dict()
    del weights["final.6.weight"], weights["aspp.img_conv.1.bias"]
    message = failure(weights, tmp_path)
    assert "2 missing" in message and "final.6.weight" in message and "aspp.img_conv.1.bias" in message


def test_unexpected_key_is_refused(source, tmp_path):
    weights = {**source.state_dict(), "final.7.weight": torch.zeros(3)}
    message = failure(weights, tmp_path)
    assert "1 unexpected" in message and "final.7.weight" in message
    assert "missing" not in message


def test_only_nvidias_exact_criterion_key_is_dropped(source, tmp_path):
    weights = {"criterion.nll_loss.weight": torch.ones(19), **source.state_dict()}
    assert "criterion.nll_loss.weight" in failure(weights, tmp_path)


def test_wrong_shape_is_refused(source, tmp_path):
    message = failure(source.state_dict(), tmp_path, num_classes=2)
    assert "wrong shape" in message
    assert "final.6.weight: file (19, 64, 1, 1), network (2, 64, 1, 1)" in message


def test_long_lists_of_keys_are_cut(source, tmp_path):
    weights = {"backbone." + k: v for k, v in source.state_dict().items()}
    message = failure(weights, tmp_path)
    missing = [k for k in source.state_dict() if not k.endswith("num_batches_tracked")]
    assert f"{len(missing)} missing: {', '.join(missing[:5])}, ... ({len(missing) - 5} more)" in message
    assert f"{len(weights)} unexpected" in message
    assert len(message) < 3000


def test_missing_file_is_named(tmp_path):
    path = tmp_path / "nowhere" / "DeepLabV3+_MobileNetV3.pth"
    with pytest.raises(CheckpointError, match="checkpoint not found: .*nowhere"):
        load_network(SMALL, 19, path, device="cpu")


def test_unreadable_file_is_named(tmp_path):
    path = tmp_path / "truncated.pth"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read checkpoint .*truncated.pth"):
        load_network(SMALL, 19, path, device="cpu")


def test_file_without_weights_is_named(tmp_path):
    path = save({"epoch": 3, "model": [1, 2]}, tmp_path / "no_weights.pth")
    with pytest.raises(CheckpointError, match="no_weights.pth holds neither .*'epoch', 'model'"):
        load_network(SMALL, 19, path, device="cpu")


class _Payload:
    """Unpickling this creates a file: only an unsafe torch.load would do that."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def test_code_in_a_file_is_not_run(source, tmp_path):
    marker = tmp_path / "was_run"
    path = save({"state_dict": source.state_dict(), "extra": _Payload(marker)}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="cannot read checkpoint .*evil.pth"):
        load_network(SMALL, 19, path, device="cpu")
    assert not marker.exists()


def test_unknown_network_lists_choices():
    with pytest.raises(ValueError) as err:
        load_network("DeepLabV3+_ResNet101", 19, None)
    for name in NETWORKS:
        assert name in str(err.value)


def test_saved_state_dict_of_a_wrapped_model_round_trips(source, tmp_path):
    wrapped = torch.nn.DataParallel(source)
    assert unwrapped(wrapped) is source
    weights = checkpoint_state_dict(wrapped, SMALL)
    assert list(weights) == list(source.state_dict())
    path = save(ours_container(weights), tmp_path / "epoch_1.pth")
    assert_same_weights(load_network(SMALL, 19, path, device="cpu"), source.state_dict())


def test_nvidia_checkpoint_of_the_paper_network(layouts_dir, tmp_path):
    """NVIDIA's layout for DeepLabV3+_WideResNet38: our saved keys are the manifest's, and the file
    with the loss key loads strictly."""
    name = "DeepLabV3+_WideResNet38"
    manifest = read_manifest(layouts_dir, name)
    torch.manual_seed(1)
    model = load_network(name, 19, None, device="cpu")
    weights = checkpoint_state_dict(model, name)
    assert list(weights) == [entry[0] for entry in manifest["state_dict"]]
    container = nvidia_container({})
    container["state_dict"] = {CRITERION_KEY: torch.ones(19), **weights}
    path = save(container, tmp_path / "cityscapes_best.pth")
    del container, weights
    loaded = load_network(name, 19, path, device="cpu")
    for (key, got), expected in zip(loaded.state_dict().items(), model.state_dict().values()):
        assert torch.equal(got, expected), key
