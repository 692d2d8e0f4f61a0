"""Inference to probs files: datasets and dtypes, softmax sums, resume after an interruption."""
import dataclasses
import os

import h5py
import numpy as np
import pytest
import torch

from src import inference, paths
from src.dataset import LostAndFound
from src.inference import InferenceError, write_probs
from src.model import build_network
from src.settings import default_config
from tests.test_atomic import killed_while_writing

MODEL = "DeepLabV3+_MobileNetV3"


@pytest.fixture
def cfg(demo_data, tmp_path):
    """LostAndFound-like evaluation of a random small network saved as the baseline checkpoint."""
    torch.manual_seed(0)
    ckpt = tmp_path / "baseline.pth"
    torch.save({"state_dict": build_network(MODEL, 19).state_dict()}, ckpt)
    return dataclasses.replace(default_config(), MODEL=MODEL, io_root=str(tmp_path / "io"), init_ckpt=str(ckpt),
                               lostandfound_root=str(demo_data["LostAndFound"]), val_epoch=0, inference_batch_size=3,
                               num_workers=0)


def _probs_files(cfg):
    return sorted(os.listdir(paths.probs_dir(cfg, 0)))


def test_probs_files_hold_the_documented_datasets(cfg):
    dataset = LostAndFound(cfg.lostandfound_root)
    assert write_probs(cfg, 0) == len(dataset)
    assert _probs_files(cfg) == [f"probs{i}.hdf5" for i in range(len(dataset))]
    for i in range(len(dataset)):
        with h5py.File(paths.probs_file(cfg, 0, i), "r") as f:
            assert set(f) == {"probabilities", "gt_train_ids", "gt_label_ids", "image_path"}
            probs, gt_train, gt_label = f["probabilities"][()], f["gt_train_ids"][()], f["gt_label_ids"][()]
            assert f["image_path"][()].decode() == dataset.images[i]
        height, width = gt_train.shape
        assert probs.shape == (19, height, width) and probs.dtype == np.float32
        assert gt_train.dtype == gt_label.dtype == np.uint8
        np.testing.assert_allclose(probs.sum(axis=0), 1.0, atol=1e-5)
        assert (probs >= 0).all()
        np.testing.assert_array_equal(gt_train, dataset.train_ids(i))
        np.testing.assert_array_equal(gt_label, dataset.label_ids(i))
        assert set(np.unique(gt_train)) <= {0, 1, 2, 255}


def test_label_ids_are_read_by_the_loader_workers(cfg, monkeypatch):
    main_process, real_label_ids = os.getpid(), LostAndFound.label_ids

    def in_a_worker(dataset, i):
        assert os.getpid() != main_process, "label ids read in the main process"
        return real_label_ids(dataset, i)
    monkeypatch.setattr(LostAndFound, "label_ids", in_a_worker)
    assert write_probs(dataclasses.replace(cfg, num_workers=1), 0) == len(LostAndFound(cfg.lostandfound_root))


def test_the_probabilities_are_the_networks_softmax(cfg):
    write_probs(dataclasses.replace(cfg, inference_batch_size=1), 0)
    model = inference.network_at_epoch(cfg, 0, 19, torch.device("cpu"))
    image, _ = LostAndFound(cfg.lostandfound_root)[1]
    with torch.no_grad():
        expected = torch.softmax(model(image[None]), 1)[0].numpy()
    with h5py.File(paths.probs_file(cfg, 0, 1), "r") as f:
        np.testing.assert_allclose(f["probabilities"][()], expected, atol=1e-6)


def test_logits_are_stored_on_request(cfg):
    write_probs(dataclasses.replace(cfg, store_logits=True), 0)
    with h5py.File(paths.probs_file(cfg, 0, 0), "r") as f:
        logits, probs = f["logits"][()], f["probabilities"][()]
    assert logits.dtype == np.float32
    np.testing.assert_allclose(torch.softmax(torch.from_numpy(logits), 0).numpy(), probs, atol=1e-6)


def test_an_interrupted_run_continues_with_the_missing_images(cfg, monkeypatch):
    real = inference.write_probs_file
    written = []

    def interrupted_after_two(path, *args, **kwargs):
        if len(written) == 2:
            raise KeyboardInterrupt
        real(path, *args, **kwargs)
        written.append(path)
    monkeypatch.setattr(inference, "write_probs_file", interrupted_after_two)
    with pytest.raises(KeyboardInterrupt):
        write_probs(dataclasses.replace(cfg, inference_batch_size=1), 0)
    assert _probs_files(cfg) == ["probs0.hdf5", "probs1.hdf5"]  # and no temporary file
    monkeypatch.undo()
    mtimes = {name: os.path.getmtime(paths.probs_file(cfg, 0, int(name[5:-5]))) for name in _probs_files(cfg)}
    assert write_probs(cfg, 0) == len(LostAndFound(cfg.lostandfound_root)) - 2
    assert all(os.path.getmtime(paths.probs_file(cfg, 0, int(n[5:-5]))) == t for n, t in mtimes.items())
    assert write_probs(cfg, 0) == 0


def test_missing_checkpoints_are_named(cfg):
    with pytest.raises(InferenceError, match=r"checkpoint of the baseline \(--init_ckpt\) not found: .*nope.pth"):
        write_probs(dataclasses.replace(cfg, init_ckpt="/nope.pth"), 0)
    with pytest.raises(InferenceError, match=r"OoD-trained epoch 3 \(ood_training.py\) not found: "
                                             r".*DeepLabV3\+_MobileNetV3_epoch_3_alpha_0.9.pth"):
        write_probs(cfg, 3)


def test_writing_removes_what_a_killed_run_left(cfg):
    left = killed_while_writing(paths.probs_file(cfg, 0, 1))
    n = write_probs(cfg, 0)
    assert _probs_files(cfg) == sorted(f"probs{i}.hdf5" for i in range(n)) and not os.path.exists(left)
