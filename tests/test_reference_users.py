"""What a user of the reference implementation brings: its probs files (other dtypes, image_path
as a one-element bytes array), and a downloaded OoD-trained checkpoint without the baseline's."""
import os
import shutil

import h5py
import numpy as np
import pytest
import torch

import evaluation
import meta_classification
from src import paths
from src.errors import run_main
from src.model import build_network
from src.segment_files import read_components, read_metrics
from src.image_outputs import segment_files
from src.settings import parse_run_config

MODEL = "DeepLabV3+_MobileNetV3"


@pytest.fixture
def network(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "downloaded_meta_ood_weights.pth"
    torch.save({"state_dict": build_network(MODEL, 19).state_dict()}, path)
    return path


def _argv(io_root, demo_data, *more):
    return ["-val", "LostAndFound", "--lostandfound_root", demo_data["LostAndFound"], "-model", MODEL,
            "--io_root", str(io_root), "--num_workers", "0", "--segment_workers", "1", *more]


def _as_the_reference_wrote_it(path):
    """Rewrites a probs file with the reference's dtypes and image_path form, without our record."""
    with h5py.File(path, "r") as f:
        probs, gt_train, gt_label, image_path = (f[k][()] for k in ("probabilities", "gt_train_ids",
                                                                    "gt_label_ids", "image_path"))
    with h5py.File(path, "w") as f:
        f.create_dataset("probabilities", data=probs)
        f.create_dataset("gt_train_ids", data=gt_train.astype(np.int64))
        f.create_dataset("gt_label_ids", data=gt_label.astype(np.float64))
        f.create_dataset("image_path", data=np.array([image_path]))


def test_probs_files_of_the_reference_are_read_by_segment_search_and_evaluation(tmp_path, demo_data, network):
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    argv = _argv(ours, demo_data, "-epoch", "0", "--init_ckpt", str(network))
    assert run_main(meta_classification.main, [*argv, "-prepare", "--store_probs"]) == 0
    cfg = parse_run_config("meta_classification", argv)
    shutil.copytree(ours, theirs)
    reference = parse_run_config("meta_classification", _argv(theirs, demo_data, "-epoch", "0", "--init_ckpt",
                                                                 str(network)))
    folder = paths.probs_dir(reference, 0)
    for name in os.listdir(folder):
        if name.startswith("probs"):
            _as_the_reference_wrote_it(os.path.join(folder, name))
        else:
            os.remove(os.path.join(folder, name))  # the reference kept no record of the inputs
    for root in (ours, theirs):
        run_argv = _argv(root, demo_data, "-epoch", "0", "--init_ckpt", str(network))
        assert run_main(meta_classification.main, [*run_argv, "-segment", "-removal"]) == 0
        assert run_main(evaluation.main, [*run_argv, "-pixel", "-segment", "--panels", "2"]) == 0
    n = len([f for f in os.listdir(paths.probs_dir(cfg, 0)) if f.startswith("probs")])
    for i in range(n):
        for mine, other in zip(segment_files(cfg, 0, i), segment_files(reference, 0, i)):
            read = read_components if "components" in mine else read_metrics
            a, b = read(mine), read(other)
            if isinstance(a, dict):
                assert list(a) == list(b) and all(np.array_equal(a[k], b[k]) for k in a)
            else:
                np.testing.assert_array_equal(a, b)
    assert all(os.path.exists(paths.panel_file(reference, 0, i)) for i in range(2))
    with open(paths.evaluation_file(cfg)) as f, open(paths.evaluation_file(reference)) as g:
        assert f.read().split('"configs"')[0] == g.read().split('"configs"')[0]  # the same numbers


def test_an_ood_trained_checkpoint_alone_is_evaluated_and_the_table_says_the_baseline_is_absent(
        tmp_path, demo_data, network, capsys):
    argv = _argv(tmp_path / "io", demo_data, "-epoch", "4")
    cfg = parse_run_config("evaluation", argv)
    os.makedirs(paths.weights_dir(cfg))
    shutil.copy(network, paths.checkpoint_path(cfg, 4))  # no baseline checkpoint anywhere
    assert run_main(evaluation.main, [*argv, "-pixel", "-segment"]) == 0
    table = capsys.readouterr().out
    assert "entropy training" in table and "baseline: not evaluated" in table
    # a published file under its own name, with --ckpt
    named = _argv(tmp_path / "io2", demo_data, "-epoch", "4", "--ckpt", str(network))
    assert run_main(evaluation.main, [*named, "-pixel"]) == 0
    assert "entropy training" in capsys.readouterr().out
    assert os.path.exists(paths.evaluation_file(parse_run_config("evaluation", named)))
