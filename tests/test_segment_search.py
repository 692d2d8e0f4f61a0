"""Segment search over small probs files written here: outputs, workers, resume, errors."""
import dataclasses
import os

import h5py
import numpy as np
import pytest
from scipy import ndimage

from src import paths
from src.metaseg import compute_metrics_components, compute_metrics_mask
from src.scores import entropy_mask
from src.errors import MetaOodError
from src.probs_file import ProbsError, read_probs, write_probs_file
from src.segment_files import read_components, read_metrics
from src.image_outputs import segment_files
from src.segment_search import run_segment_search
from src.settings import default_config
from tests.test_atomic import killed_while_writing

EPOCH, OOD_INDEX, N_IMAGES = 1, 1, 3


@pytest.fixture
def cfg(tmp_path):
    return dataclasses.replace(default_config(), io_root=str(tmp_path), VALSET="Fishyscapes",
                               entropy_threshold=0.7, segment_workers=1)


def probs_image(rng, H=24, W=32):
    """Softmax with a few flat (high-entropy) blobs; gt with OoD blobs and a void strip."""
    flat = ndimage.gaussian_filter(rng.random((H, W)), 2)
    logits = rng.normal(0, 4, (19, H, W)) * np.where(flat > np.quantile(flat, 0.8), 0.05, 1.0)
    probs = np.exp(logits - logits.max(0))
    gt_train = np.where(ndimage.gaussian_filter(rng.random((H, W)), 2) > 0.55, OOD_INDEX, 0).astype(np.uint8)
    gt_train[-3:] = 255
    gt_label = rng.integers(0, 3, (H, W), dtype=np.uint8)
    return (probs / probs.sum(0)).astype(np.float32), gt_train, gt_label


def write_probs_files(cfg, seed=0, n_images=N_IMAGES):
    rng = np.random.default_rng(seed)
    for i in range(n_images):
        probs, gt_train, gt_label = probs_image(rng)
        write_probs_file(paths.probs_file(cfg, EPOCH, i), probs, gt_train, gt_label, f"images/{i}.png")


def direct_results(cfg, index):
    with h5py.File(paths.probs_file(cfg, EPOCH, index), "r") as f:
        probs, gt_train, gt_label = (f[k][()] for k in ("probabilities", "gt_train_ids", "gt_label_ids"))
    ood_mask = entropy_mask(probs, cfg.entropy_threshold)
    return [*compute_metrics_components(probs, gt_train, ood_mask, OOD_INDEX),
            *compute_metrics_mask(probs, ood_mask, gt_train, gt_label, OOD_INDEX)]


@pytest.mark.parametrize("workers", [1, 2])
def test_outputs_equal_the_direct_calls(cfg, workers):
    cfg = dataclasses.replace(cfg, segment_workers=workers)
    write_probs_files(cfg)
    assert run_segment_search(cfg, EPOCH, OOD_INDEX) == (N_IMAGES, 0)
    n_segments = 0
    for i in range(N_IMAGES):
        files = segment_files(cfg, EPOCH, i)
        assert files[0] == paths.metrics_file(cfg, EPOCH, i) and files[3] == paths.components_file(cfg, EPOCH, i, gt=True)
        expected = direct_results(cfg, i)
        for path, want, read in zip(files, expected, (read_metrics, read_components) * 2):
            got = read(path)
            if isinstance(want, dict):
                assert type(got) is dict and list(got) == list(want)
                for key in want:
                    np.testing.assert_array_equal(got[key], want[key])
                n_segments += len(got["S"])
            else:
                assert got.dtype == np.int32
                np.testing.assert_array_equal(got, want)
    assert n_segments > 0


def test_rerun_skips_finished_images(cfg):
    write_probs_files(cfg)
    assert run_segment_search(cfg, EPOCH, OOD_INDEX) == (N_IMAGES, 0)
    assert run_segment_search(cfg, EPOCH, OOD_INDEX) == (0, N_IMAGES)
    os.remove(paths.components_file(cfg, EPOCH, 1, gt=True))
    assert run_segment_search(cfg, EPOCH, OOD_INDEX) == (1, N_IMAGES - 1)
    assert os.path.exists(paths.components_file(cfg, EPOCH, 1, gt=True))


def test_missing_probs_folder_is_named(cfg):
    with pytest.raises(ProbsError, match="no outputs of the prepare stage") as info:
        run_segment_search(cfg, EPOCH, OOD_INDEX)
    assert paths.probs_dir(cfg, EPOCH) in str(info.value)


@pytest.mark.parametrize("workers", [1, 2])
def test_probs_file_without_a_dataset_is_named(cfg, workers):
    cfg = dataclasses.replace(cfg, segment_workers=workers)
    write_probs_files(cfg)
    broken = paths.probs_file(cfg, EPOCH, 2)
    with h5py.File(broken, "a") as f:
        del f["gt_label_ids"]
    with pytest.raises(ProbsError, match="missing dataset.*gt_label_ids") as info:
        run_segment_search(cfg, EPOCH, OOD_INDEX)
    assert broken in str(info.value)
    assert not os.path.exists(paths.metrics_file(cfg, EPOCH, 2))


def test_unreadable_probs_file_is_named(cfg):
    write_probs_files(cfg)
    broken = paths.probs_file(cfg, EPOCH, 0)
    with open(broken, "wb") as f:
        f.write(b"not hdf5")
    with pytest.raises(ProbsError, match="not a readable HDF5 probs file") as info:
        run_segment_search(cfg, EPOCH, OOD_INDEX)
    assert broken in str(info.value)


def test_probs_problems_are_one_line_errors_naming_the_prepare_stage(cfg):
    with pytest.raises(MetaOodError, match="meta_classification.py -prepare"):
        run_segment_search(cfg, EPOCH, OOD_INDEX)
    write_probs_files(cfg)
    path = paths.probs_file(cfg, EPOCH, 0)
    with pytest.raises(MetaOodError, match="missing dataset.*logits.*-prepare --store_logits") as info:
        read_probs(path, ("logits", "gt_train_ids"))
    assert path in str(info.value)
    with open(path, "wb") as f:
        f.write(b"not hdf5")
    with pytest.raises(MetaOodError, match="meta_classification.py -prepare"):
        read_probs(path, ("gt_train_ids",))


def test_read_probs_returns_the_named_datasets_in_order(cfg):
    write_probs_files(cfg)
    path = paths.probs_file(cfg, EPOCH, 1)
    gt_train, image_path = read_probs(path, ("gt_train_ids", "image_path"))
    assert gt_train.shape == (24, 32) and image_path == "images/1.png"


def test_the_search_removes_what_a_killed_search_left(cfg):
    write_probs_files(cfg)
    left = [killed_while_writing(paths.metrics_file(cfg, EPOCH, 0)),
            killed_while_writing(paths.components_file(cfg, EPOCH, 2, gt=True))]
    assert run_segment_search(cfg, EPOCH, OOD_INDEX) == (N_IMAGES, 0)
    assert not any(os.path.exists(path) for path in left)
    for folder in {os.path.dirname(f) for f in segment_files(cfg, EPOCH, 0)}:
        outputs = set(os.listdir(folder)) - {os.path.basename(paths.identity_file(folder))}
        assert sorted(outputs) == [f"{i:04d}.npz" for i in range(N_IMAGES)]
