"""The prepare stage with --store_probs, to probs files: datasets and dtypes, softmax sums, resume after
an interruption, the Fishyscapes sets as distributed through meta_classification.py. (The compact
outputs: tests/test_image_outputs.py.)"""
import dataclasses
import glob
import os

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

import meta_classification
from src import evaluation, image_outputs, inference, paths
from src.dataset import LostAndFound
from src.dataset.transforms import IMAGENET_MEAN, IMAGENET_STD
from src.errors import run_main
from src.inference import InferenceError, prepare_images
from src.model import build_network
from src.settings import default_config, parse_run_config
from tests.fixtures_data import TINY, fishyscapes_official_image
from tests.test_atomic import killed_while_writing

MODEL = "DeepLabV3+_MobileNetV3"


@pytest.fixture
def cfg(demo_data, tmp_path):
    """LostAndFound-like evaluation of a random small network saved as the baseline checkpoint, to probs files."""
    torch.manual_seed(0)
    ckpt = tmp_path / "baseline.pth"
    torch.save({"state_dict": build_network(MODEL, 19).state_dict()}, ckpt)
    return dataclasses.replace(default_config(), MODEL=MODEL, io_root=str(tmp_path / "io"), init_ckpt=str(ckpt),
                               lostandfound_root=str(demo_data["LostAndFound"]), val_epoch=0, inference_batch_size=3,
                               num_workers=0, store_probs=True)


def _probs_files(cfg):
    """The files of the baseline's probs folder but its record of their inputs."""
    folder = paths.probs_dir(cfg, 0)
    return sorted(set(os.listdir(folder)) - {os.path.basename(paths.identity_file(folder))})


def test_probs_files_hold_the_documented_datasets(cfg):
    dataset = LostAndFound(cfg.lostandfound_root)
    assert prepare_images(cfg, 0) == len(dataset)
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
    assert prepare_images(dataclasses.replace(cfg, num_workers=1), 0) == len(LostAndFound(cfg.lostandfound_root))


def test_the_probabilities_are_the_networks_softmax(cfg):
    prepare_images(dataclasses.replace(cfg, inference_batch_size=1), 0)
    model = inference.network_at_epoch(cfg, 0, 19, torch.device("cpu"))
    image, _ = LostAndFound(cfg.lostandfound_root)[1]
    with torch.no_grad():
        expected = torch.softmax(model(image[None]), 1)[0].numpy()
    with h5py.File(paths.probs_file(cfg, 0, 1), "r") as f:
        np.testing.assert_allclose(f["probabilities"][()], expected, atol=1e-6)


def test_logits_are_stored_on_request(cfg):
    prepare_images(dataclasses.replace(cfg, store_logits=True), 0)
    with h5py.File(paths.probs_file(cfg, 0, 0), "r") as f:
        logits, probs = f["logits"][()], f["probabilities"][()]
    assert logits.dtype == np.float32
    np.testing.assert_allclose(torch.softmax(torch.from_numpy(logits), 0).numpy(), probs, atol=1e-6)


def test_an_interrupted_run_continues_with_the_missing_images(cfg, monkeypatch):
    real = image_outputs.write_probs_file
    written = []

    def interrupted_after_two(path, *args, **kwargs):
        if len(written) == 2:
            raise KeyboardInterrupt
        real(path, *args, **kwargs)
        written.append(path)
    monkeypatch.setattr(image_outputs, "write_probs_file", interrupted_after_two)
    with pytest.raises(KeyboardInterrupt):
        prepare_images(dataclasses.replace(cfg, inference_batch_size=1), 0)
    assert _probs_files(cfg) == ["probs0.hdf5", "probs1.hdf5"]  # and no temporary file
    monkeypatch.undo()
    mtimes = {name: os.path.getmtime(paths.probs_file(cfg, 0, int(name[5:-5]))) for name in _probs_files(cfg)}
    assert prepare_images(cfg, 0) == len(LostAndFound(cfg.lostandfound_root)) - 2
    assert all(os.path.getmtime(paths.probs_file(cfg, 0, int(n[5:-5]))) == t for n, t in mtimes.items())
    assert prepare_images(cfg, 0) == 0


def test_missing_checkpoints_are_named(cfg):
    with pytest.raises(InferenceError, match=r"checkpoint of the baseline \(--init_ckpt\) not found: .*nope.pth"):
        prepare_images(dataclasses.replace(cfg, init_ckpt="/nope.pth"), 0)
    with pytest.raises(InferenceError, match=r"OoD-trained epoch 3 \(ood_training.py or --ckpt\) not found: "
                                             r".*DeepLabV3\+_MobileNetV3_epoch_3_alpha_0.9.pth"):
        prepare_images(cfg, 3)


def normalized(image: np.ndarray) -> torch.Tensor:
    """(1,3,H,W) network input of a uint8 (H,W,3) image."""
    mean, std = torch.tensor(IMAGENET_MEAN)[:, None, None], torch.tensor(IMAGENET_STD)[:, None, None]
    return ((torch.from_numpy(image).permute(2, 0, 1).float() / 255 - mean) / std)[None]


@pytest.mark.parametrize("split", ["Static", "LostAndFound"])
def test_meta_classification_on_fishyscapes_as_distributed(cfg, demo_official, split, monkeypatch):
    """The script's probs files hold the network's softmax of the composed images (Static: the
    Cityscapes image plus the overlay, clipped), and the evaluation's panels show those images."""
    argv = ["--cityscapes_root", demo_official["Cityscapes"], "-prepare", "-segment", "-val", "Fishyscapes", "--fishyscapes_split", split, "-epoch", "0",
            "-model", MODEL, "--io_root", cfg.io_root, "--init_ckpt", cfg.init_ckpt,
            "--fishyscapes_root", demo_official["Fishyscapes"], "--lostandfound_root", demo_official["LostAndFound"],
            "--num_workers", "0", "--segment_workers", "1", "--store_probs"]
    assert run_main(meta_classification.main, argv) == 0
    run = parse_run_config("meta_classification", argv)
    labels = sorted(glob.glob(os.path.join(demo_official["Fishyscapes"], split, "*_labels.png")))
    assert len(labels) == TINY["n_fishyscapes"] and _probs_files(run) == [f"probs{i}.hdf5" for i in range(len(labels))]
    images = [fishyscapes_official_image(label, demo_official) for label in labels]
    model = inference.network_at_epoch(run, 0, 19, torch.device("cpu"))
    for i, (label, image) in enumerate(zip(labels, images)):
        with h5py.File(paths.probs_file(run, 0, i), "r") as f:
            probs, gt_train, gt_label = f["probabilities"][()], f["gt_train_ids"][()], f["gt_label_ids"][()]
            image_path = f["image_path"][()].decode()
        assert probs.shape == (19, TINY["height"], TINY["width"])
        np.testing.assert_array_equal(gt_train, np.array(Image.open(label)))
        assert set(np.unique(gt_train)) == {0, 1, 255} and not gt_label.any()
        assert os.path.isfile(image_path) and os.path.basename(label)[5:-len("_labels.png")] in image_path
        with torch.no_grad():
            np.testing.assert_allclose(probs, torch.softmax(model(normalized(image)), 1)[0].numpy(), atol=1e-5)
    drawn = {}
    monkeypatch.setattr(evaluation, "plot_image_panel", lambda path, image, *_, **__: drawn.setdefault(path, image))
    evaluation._draw_panels(run, 0, {i: set() for i in range(len(labels))})
    assert len(drawn) == len(images)
    for i, image in enumerate(images):
        np.testing.assert_array_equal(drawn[paths.panel_file(run, 0, i)], image)

def test_writing_removes_what_a_killed_run_left(cfg):
    left = killed_while_writing(paths.probs_file(cfg, 0, 1))
    n = prepare_images(cfg, 0)
    assert _probs_files(cfg) == sorted(f"probs{i}.hdf5" for i in range(n)) and not os.path.exists(left)
