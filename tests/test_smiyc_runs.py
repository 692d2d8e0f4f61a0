"""The SegmentMeIfYouCan sets through meta_classification.py and evaluation.py on generated data: the
benchmark's protocol on each set (against scikit-learn on the scores and labels), the table, the
submission files (format, names, values, a re-run that skips finished frames), and test splits, whose
labels are withheld."""
import logging
import glob
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import average_precision_score

import evaluation
import meta_classification
from src import paths
from src.atomic import read_json
from src.segment_files import read_components
from src.dataset import build_dataset
from src.errors import run_main
from src.fp_removal import removed_segments
from src.meta_classifier import fit_meta_classifier
from src.metaseg import compute_metrics_components
from src.model import build_network
from src.scores import normalized_entropy
from src.settings import parse_run_config
from src.submission import write_submission

MODEL = "DeepLabV3+_MobileNetV3"
# Random weights with the last layer scaled up: entropies from 0 to 1, a dozen segments per frame.
LOGIT_SCALE = 1000


@pytest.fixture(scope="module")
def flags(tmp_path_factory, demo_smiyc, demo_data):
    """The flags every run here shares: the generated sets, two random networks (baseline, and
    epoch 1 through --ckpt), one output root, inference batches of 3 (that mix frame sizes), probs
    files (which the expected values are computed from; the compact outputs are compared with them
    at the end)."""
    folder = tmp_path_factory.mktemp("smiyc_runs")
    checkpoints = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        network = build_network(MODEL, 19)
        with torch.no_grad():
            network.final[6].weight *= LOGIT_SCALE
        checkpoints.append(folder / f"network{seed}.pth")
        torch.save({"state_dict": network.state_dict()}, checkpoints[-1])
    return ["-model", MODEL, "--io_root", str(folder / "io"), "--init_ckpt", str(checkpoints[0]),
            "--roadanomaly21_root", demo_smiyc["RoadAnomaly21"], "--roadobstacle21_root", demo_smiyc["RoadObstacle21"],
            "--lostandfound_root", demo_smiyc["LostAndFound-testNoKnown"], "--fishyscapes_root",
            demo_data["Fishyscapes"], "--num_workers", "0", "--segment_workers", "1", "-batch", "3",
            "--store_probs"], checkpoints[1]


def _score(cfg, epoch, i) -> np.ndarray:
    with h5py.File(paths.probs_file(cfg, epoch, i), "r") as f:
        return normalized_entropy(f["probabilities"][()])


def _segments_without_void(cfg, epoch, i):
    """MetaSeg's metrics and components of the segments at the entropy threshold when no pixel is void:
    anomaly labels kept, every other pixel in-distribution."""
    with h5py.File(paths.probs_file(cfg, epoch, i), "r") as f:
        probs, gt_train = f["probabilities"][()], f["gt_train_ids"][()]
    mask = (normalized_entropy(probs) >= cfg.entropy_threshold).astype(np.uint8)
    return compute_metrics_components(probs, (gt_train == 1).astype(np.uint8), mask, 1)


def _removed_zero(score, components, removed) -> np.ndarray:
    """The meta-classified entropy: 0 on the pixels of the removed segments."""
    return np.where(np.isin(np.abs(components), list(removed)), 0, score)


def _sklearn_ap(scores, dataset) -> float:
    """average_precision_score on the float16 scores of every pixel labelled 0 or 1."""
    labels = [dataset.train_ids(i) for i in range(len(dataset))]
    valid = np.concatenate([(label == 0) | (label == 1) for label in labels], axis=None)
    return average_precision_score(np.concatenate(labels, axis=None)[valid] == 1,
                                   np.concatenate([s.astype(np.float16) for s in scores], axis=None)[valid])


@pytest.mark.parametrize("valset, split_flags, track, trained", [
    ("RoadAnomaly21", [], "anomaly", True),
    ("RoadObstacle21", [], "obstacle", False),
    ("LostAndFound-testNoKnown", [], "obstacle", False),
    ("Fishyscapes", ["--fishyscapes_split", "LostAndFound"], "anomaly", False),
])
def test_each_smiyc_set_runs_through_the_scripts_with_the_benchmarks_protocol(flags, valset, split_flags, track,
                                                                              trained):
    common, trained_ckpt = flags
    argv = [*common, "-val", valset, *split_flags]
    run = argv + (["-epoch", "1", "--ckpt", str(trained_ckpt)] if trained else ["-epoch", "0"])
    assert run_main(meta_classification.main, run) == 0
    # no stage flag: -pixel -segment and, on a SMIYC set, -smiyc; panels of every frame size
    panels = 3 if trained else 1
    assert run_main(evaluation.main, [*run, "--panels", str(panels)]) == 0
    cfg = parse_run_config("evaluation", run)
    results = read_json(paths.evaluation_file(cfg), "results", "evaluation.py")
    smiyc, dataset = results["smiyc"], build_dataset(valset, cfg)
    epochs = {"baseline": 0, "trained": 1} if trained else {"baseline": 0}
    assert set(smiyc) == {"config", "meta", *epochs}
    assert smiyc["config"]["track"] == track and smiyc["config"]["score"] == "entropy"
    for run_name, epoch in epochs.items():
        assert smiyc[run_name]["ap"] == pytest.approx(
            _sklearn_ap([_score(cfg, epoch, i) for i in range(len(dataset))], dataset), rel=1e-12)
        assert "components_of_metaood_segments" in results["segment"][run_name]
    meta_epoch = max(epochs.values())
    removed = removed_segments(read_json(paths.meta_classifier_file(cfg, meta_epoch), "result", "meta_classification.py"))
    meta_scores = [_removed_zero(_score(cfg, meta_epoch, i),
                                 read_components(paths.components_file(cfg, meta_epoch, i)), removed[i])
                   for i in range(len(dataset))]
    assert smiyc["meta"]["ap"] == pytest.approx(_sklearn_ap(meta_scores, dataset), rel=1e-12)
    assert 0 <= smiyc["meta"]["fpr95"] <= 1 and len(smiyc["meta"]["f1"]) == 11
    table = Path(paths.table_file(cfg)).read_text()
    block = table[table.index(f"SegmentMeIfYouCan protocol, {track} track"):].split("\n\n")[0].splitlines()
    assert block[1].split() == ["AP", "FPR95", "sIoU", "gt", "PPV", "mean", "F1"]
    assert [line[:24].strip() for line in block[2:]] == (
        ["baseline", "entropy training", "+ meta classification"] if trained else ["baseline", "+ meta classification"])
    assert f"{100 * smiyc['meta']['ap']:.2f}" == block[-1].split()[3]
    assert "component metrics of Meta-OoD's segments (entropy threshold; not the leaderboard's protocol)" in table
    for i in range(panels):
        assert Image.open(paths.panel_file(cfg, meta_epoch, i)).format == "PNG"


def _submission_files(cfg, method, name):
    return sorted(Path(paths.submission_root(cfg), method, name).glob("*"))


def test_submission_of_a_test_split_without_labels(flags, caplog):
    common, trained_ckpt = flags
    validation_argv = [*common, "-val", "RoadAnomaly21", "-epoch", "1", "--ckpt", str(trained_ckpt)]
    argv = [*validation_argv, "--roadanomaly21_split", "test"]
    # nothing to evaluate, nor to train a meta classifier on; the first two stages run
    with caplog.at_level(logging.INFO):
        assert run_main(evaluation.main, argv) == 1
        assert "RoadAnomaly21 test: its labels are withheld" in caplog.text and "--submission" in caplog.text
        assert run_main(meta_classification.main, [*argv, "-segment"]) == 1
        assert run_main(meta_classification.main, argv) == 0
        assert "segment search and false-positive removal skipped: the labels of RoadAnomaly21 test are withheld" \
            in caplog.text
    cfg = parse_run_config("evaluation", [*argv, "--submission"])
    assert len(glob.glob(os.path.join(paths.probs_dir(cfg, 1), "probs*.hdf5"))) == 3 and not os.path.exists(paths.metaseg_dir(cfg))
    assert run_main(evaluation.main, [*argv, "--submission"]) == 0
    dataset = build_dataset("RoadAnomaly21", cfg)
    plain, meta = paths.submission_methods(cfg, 1)
    assert (plain, meta) == (f"MetaOoD_{MODEL}_epoch_1_alpha_0.9_entropy",
                             f"MetaOoD_{MODEL}_epoch_1_alpha_0.9_entropy_meta_t0.7_loo")
    # the meta classifier learns from the validation split's segments, and decides on the test segments,
    # all searched without void
    validation = parse_run_config("evaluation", validation_argv)
    classifier = fit_meta_classifier([_segments_without_void(validation, 1, i)[0] for i in range(3)])
    removed_any = False
    for method in (plain, meta):
        files = _submission_files(cfg, method, "AnomalyTrack-all")
        assert [f.name for f in files] == ["airplane0000.hdf5", "animals0001.hdf5", "boat0002.hdf5"]
        for i, path in enumerate(files):
            with h5py.File(path, "r") as f:
                assert list(f) == ["value"]
                value = f["value"]
                assert value.dtype == np.float16 and (value.compression, value.compression_opts) == ("gzip", 9)
                stored = value[()]
            width, height = Image.open(dataset.images[i]).size
            assert stored.shape == (height, width)
            expected = _score(cfg, 1, i)
            if method == meta:
                metrics, components = _segments_without_void(cfg, 1, i)
                removed = np.flatnonzero(classifier.removed(metrics)) + 1
                expected = _removed_zero(expected, components, removed)
                removed_any |= removed.size > 0
            np.testing.assert_array_equal(stored, expected.astype(np.float16))
    assert removed_any
    # a re-run writes only what is missing
    os.remove(_submission_files(cfg, plain, "AnomalyTrack-all")[1])
    kept = {p: p.stat().st_mtime_ns for m in (plain, meta) for p in _submission_files(cfg, m, "AnomalyTrack-all")}
    assert write_submission(cfg) == {plain: 1, meta: 0}
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items())
    assert len(_submission_files(cfg, plain, "AnomalyTrack-all")) == 3


def test_submission_of_a_labelled_split_uses_the_cross_validated_decisions(flags):
    common, _ = flags
    argv = [*common, "-val", "RoadObstacle21", "-epoch", "0", "--submission", "--submission_name", "mine"]
    assert run_main(evaluation.main, argv) == 0
    cfg = parse_run_config("evaluation", argv)
    removed = removed_segments(read_json(paths.meta_classifier_file(cfg, 0), "result", "meta_classification.py"))
    assert paths.submission_methods(cfg, 0) == ("mine", "mine_meta_t0.7_loo")
    files = _submission_files(cfg, "mine_meta_t0.7_loo", "ObstacleTrack-all")
    assert [f.stem for f in files] == ["validation_1", "validation_2", "validation_30"]
    for i, path in enumerate(files):
        with h5py.File(path, "r") as f:
            stored = f["value"][()]
        expected = _removed_zero(_score(cfg, 0, i), read_components(paths.components_file(cfg, 0, i)), removed[i])
        np.testing.assert_array_equal(stored, expected.astype(np.float16))
    assert any(removed.values())


@pytest.mark.parametrize("extra, message", [
    (["-val", "Fishyscapes", "--fishyscapes_split", "LostAndFound", "--submission"],
     "--submission: Fishyscapes LostAndFound has no SegmentMeIfYouCan submission; the sets that have one: "
     "RoadAnomaly21, RoadObstacle21, LostAndFound-testNoKnown"),
    (["-val", "Fishyscapes", "-smiyc"], "-smiyc: Fishyscapes Static is not a SegmentMeIfYouCan set; these are: "
                                        "Fishyscapes (LostAndFound split), RoadAnomaly21 (validation split), "
                                        "RoadObstacle21 (validation split), LostAndFound-testNoKnown"),
])
def test_other_sets_are_refused_before_any_work(flags, extra, message, caplog, tmp_path):
    common, _ = flags
    argv = [*common, "--io_root", str(tmp_path), *extra, "-epoch", "0"]  # the last --io_root counts
    with caplog.at_level(logging.ERROR):
        assert run_main(evaluation.main, argv) == 1
    assert message in caplog.text
    assert not os.path.exists(paths.eval_io_root(parse_run_config("evaluation", argv)))


def test_compact_outputs_give_the_protocol_and_the_submissions_of_probs_files(flags, tmp_path):
    common, trained_ckpt = flags
    compact = [*(f for f in common if f != "--store_probs"), "--io_root", str(tmp_path)]  # the last --io_root counts
    run = ["-val", "RoadAnomaly21", "-epoch", "1", "--ckpt", str(trained_ckpt)]
    results, submissions = [], []
    for shared in (common, compact):
        assert run_main(evaluation.main, [*shared, *run, "-smiyc"]) == 0
        assert run_main(evaluation.main, [*shared, *run, "--roadanomaly21_split", "test", "--submission"]) == 0
        cfg = parse_run_config("evaluation", [*shared, *run, "--roadanomaly21_split", "test"])
        results.append(read_json(paths.evaluation_file(parse_run_config("evaluation", [*shared, *run])), "results",
                                 "evaluation.py")["smiyc"])
        files = [p for method in paths.submission_methods(cfg, 1) for p in _submission_files(cfg, method,
                                                                                            "AnomalyTrack-all")]
        submissions.append([h5py.File(p, "r")["value"][()] for p in files])
    assert not glob.glob(os.path.join(paths.probs_dir(cfg, 1), "*.hdf5"))  # the compact run kept none
    assert results[0] == results[1]
    assert len(submissions[1]) == 6 and all(np.array_equal(a, b) for a, b in zip(*submissions))
