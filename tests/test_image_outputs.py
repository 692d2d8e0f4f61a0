"""The compact outputs of the prepare stage (the default) against probs files (--store_probs): the
same segment metrics, components, histograms, meta classifier results and results files, through
the scripts on the tiny LostAndFound- and Fishyscapes-like sets; other scores and thresholds; what
a 1024x2048 image costs on disk."""
import dataclasses
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import evaluation
import meta_classification
from src import image_outputs, paths
from src.compact_file import read_labels, read_score_map
from src.errors import run_main
from src.model import build_network
from src.probs_file import read_probs
from src.settings import default_config, parse_run_config

MODEL = "DeepLabV3+_MobileNetV3"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A random small network whose last layer is scaled up: confident in places, so that the entropy
    threshold finds a few segments per image (a network as initialized is uncertain everywhere)."""
    torch.manual_seed(0)
    network = build_network(MODEL, 19)
    with torch.no_grad():
        network.final[6].weight.mul_(1000)
    path = tmp_path_factory.mktemp("network") / "baseline.pth"
    torch.save({"state_dict": network.state_dict()}, path)
    return str(path)


def _argv(root, checkpoint, demo_data, valset, *flags):
    return ["-val", valset, "-epoch", "0", "-model", MODEL, "--io_root", str(root), "--init_ckpt", checkpoint,
            "--lostandfound_root", str(demo_data["LostAndFound"]), "--fishyscapes_root",
            str(demo_data["Fishyscapes"]), "--num_workers", "0", "--segment_workers", "1", *flags]


def _pipeline(root, checkpoint, demo_data, valset, meta_flags=(), eval_flags=()):
    """meta_classification.py, then evaluation.py; the evaluation's run configuration."""
    assert run_main(meta_classification.main, _argv(root, checkpoint, demo_data, valset, *meta_flags)) == 0
    argv = _argv(root, checkpoint, demo_data, valset, *eval_flags)
    assert run_main(evaluation.main, argv) == 0
    return parse_run_config("evaluation", argv)


def _numbers(root):
    """Relative path -> bytes of the segment search's, meta classifier's and evaluation's files and their
    records, the pictures left out."""
    files = {}
    for path in sorted(Path(root).rglob("*")):
        relative = path.relative_to(root).as_posix()
        if path.is_file() and ("/metaseg_io/" in relative or "/results/" in relative):
            files[relative] = path.read_bytes()
            if path.suffix == ".json" and path.name.startswith("evaluation_"):
                files[relative] = json.loads(files[relative])
    return files


@pytest.mark.parametrize("valset", ["LostAndFound", "Fishyscapes"])
def test_compact_outputs_and_probs_files_give_the_same_numbers(tmp_path, checkpoint, demo_data, valset):
    compact = _pipeline(tmp_path / "compact", checkpoint, demo_data, valset)
    probs = _pipeline(tmp_path / "probs", checkpoint, demo_data, valset, ["--store_probs"], ["--store_probs"])
    assert not os.path.exists(paths.probs_dir(compact, 0)) and not os.path.exists(paths.compact_dir(probs, 0))
    got, expected = _numbers(tmp_path / "compact"), _numbers(tmp_path / "probs")
    assert sorted(got) == sorted(expected) and len(got) > 12
    assert {name: got[name] for name in got} == expected
    saved = json.loads(Path(paths.meta_classifier_file(compact, 0)).read_text())
    assert saved["n_segments"] >= 4 and 0 < sum(saved["iou0"]) < saved["n_segments"]
    # what the later stages read of each image, from the compact files
    for i in image_outputs.image_indices(compact, 0):
        gt_train, gt_label, image_path = read_labels(paths.labels_file(compact, 0, i))
        np.testing.assert_array_equal(gt_train, image_outputs.labels(probs, 0, i)[0])
        assert image_path == image_outputs.labels(probs, 0, i)[1]
        np.testing.assert_array_equal(read_score_map(paths.score_map_file(compact, 0, i)),
                                      image_outputs.score_of(probs, 0, i).astype(np.float16))


@pytest.mark.parametrize("score", ["msp", "maxlogit", "energy"])
def test_other_scores_need_the_network_again_and_give_the_numbers_of_probs_files(tmp_path, checkpoint, demo_data,
                                                                                  score, caplog):
    caplog.set_level(logging.INFO)
    compact = _pipeline(tmp_path / "compact", checkpoint, demo_data, "LostAndFound", (), ["-pixel", "--score", score])
    again = [r.getMessage() for r in caplog.records if "run through the network again" in r.getMessage()]
    assert again == [f"4 of them run through the network again for their {score} score maps and {score} histograms "
                     "of 10000 bins, missing or of other inputs: compact outputs keep what the settings they were "
                     "written with need (with --store_probs the whole softmax is kept, and another -threshold, "
                     "--score or --bins needs no network)"]
    stored = ["--store_probs", "--store_logits"]
    _pipeline(tmp_path / "probs", checkpoint, demo_data, "LostAndFound", stored, [*stored, "-pixel", "--score", score])
    got, expected = _numbers(tmp_path / "compact"), _numbers(tmp_path / "probs")
    histograms = os.path.relpath(paths.histograms_file(compact, 0), tmp_path / "compact")
    assert got[histograms] == expected[histograms]
    results = os.path.relpath(paths.evaluation_file(compact), tmp_path / "compact")
    assert got[results]["pixel"] == expected[results]["pixel"]


def test_another_threshold_needs_the_network_again_and_says_so(tmp_path, checkpoint, demo_data, caplog, capsys):
    caplog.set_level(logging.INFO)
    root = tmp_path / "compact"
    argv = _argv(root, checkpoint, demo_data, "LostAndFound")
    assert run_main(meta_classification.main, argv) == 0
    # the segment search alone cannot compute other segments without probs files
    assert run_main(meta_classification.main, [*argv, "-segment", "-threshold", "0.5"]) == 1
    assert ("segment search: 4 image(s) (e.g. image 0) have neither the segment files of entropy threshold 0.5 nor "
            "a probs file to compute them from") in caplog.text
    assert "Run meta_classification.py -prepare with this -threshold" in caplog.text
    caplog.clear()
    compact = _pipeline(root, checkpoint, demo_data, "LostAndFound", ["-threshold", "0.5"], ["-threshold", "0.5"])
    assert "4 of them run through the network again for their segments at entropy threshold 0.5, " in caplog.text
    probs = _pipeline(tmp_path / "probs", checkpoint, demo_data, "LostAndFound", ["--store_probs"], ["--store_probs"])
    # the probs files serve another threshold without the network
    caplog.clear()
    _pipeline(tmp_path / "probs", checkpoint, demo_data, "LostAndFound", ["-threshold", "0.5"], ["-threshold", "0.5"])
    assert "0 of 4 images to run through the network" in caplog.text and "again" not in caplog.text
    assert paths.meta_classifier_file(compact, 0).endswith("baseline_t0.5_loo.json")
    got, expected = _numbers(root), _numbers(tmp_path / "probs")
    assert {k: v for k, v in got.items() if "0.5" in k} == {k: v for k, v in expected.items() if "0.5" in k}
    assert os.path.exists(paths.meta_classifier_file(dataclasses.replace(probs, entropy_threshold=0.5), 0))


@pytest.fixture(scope="module")
def big_image(tmp_path_factory):
    """The 1024x2048 benchmark input (bench/reference/gen_big.py 1024 2048 7): probs, gt_train, gt_label."""
    path = tmp_path_factory.mktemp("big") / "big.npz"
    subprocess.run([sys.executable, "gen_big.py", "1024", "2048", "7", str(path)], cwd=REPO / "bench" / "reference",
                   check=True, stdout=subprocess.DEVNULL)
    with np.load(path) as data:
        return data["probs"], data["gt_train"], data["gt_label"]


def test_a_1024x2048_image_costs_at_most_5_mb(tmp_path, big_image):
    probs, gt_train, gt_label = big_image
    cfg = dataclasses.replace(default_config(), io_root=str(tmp_path), VALSET="Fishyscapes", val_epoch=0)
    logits = torch.from_numpy(np.log(np.maximum(probs, np.finfo(np.float32).tiny)))
    image_outputs.write_image_outputs(cfg, 0, 0, logits, gt_train, gt_label, "big.png")
    written = {p.relative_to(tmp_path).as_posix(): p.stat().st_size for p in tmp_path.rglob("*") if p.is_file()}
    assert len(written) == 7
    assert sum(written.values()) <= 5e6, written
    assert written[os.path.relpath(paths.score_map_file(cfg, 0, 0), tmp_path)] < 4.2e6


def test_bf16_inference_writes_outputs_of_its_own_close_to_fp32(tmp_path, checkpoint, demo_data):
    argv = _argv(tmp_path, checkpoint, demo_data, "LostAndFound", "-prepare", "--store_probs")
    assert run_main(meta_classification.main, argv) == 0
    assert run_main(meta_classification.main, [*argv, "--amp", "bf16"]) == 0
    fp32, bf16 = (parse_run_config("meta_classification", argv + extra) for extra in ([], ["--amp", "bf16"]))
    assert paths.probs_dir(bf16, 0).endswith("probs/baseline_bf16")
    differences = [np.abs(read_probs(paths.probs_file(fp32, 0, i), ("probabilities",))[0]
                          - read_probs(paths.probs_file(bf16, 0, i), ("probabilities",))[0]).max() for i in range(4)]
    assert 0 < max(differences) < 0.1
