"""The evaluation stages' own logic on small files written here: probs reading, names, results."""
import dataclasses
import json
import os

import h5py
import numpy as np
import pytest

from src import evaluation, image_outputs, paths, provenance
from src.atomic import read_json, write_npz
from src.errors import MetaOodError
from src.scores import energy_score, normalized_entropy
from src.settings import default_config
from tests.test_atomic import killed_while_writing
from tests.test_segment_search import EPOCH, write_probs_files


@pytest.fixture
def cfg(tmp_path):
    return dataclasses.replace(default_config(), io_root=str(tmp_path), VALSET="Fishyscapes")


INPUTS = {"weights": {"baseline": {"sha256": "ab" * 32}}, "data": {"images": 3, "sha256": "cd" * 32}}


@pytest.fixture
def fixed_inputs(monkeypatch):
    """Every section of the results is of the same inputs (no data set is read for them)."""
    monkeypatch.setattr(provenance, "section_inputs", lambda cfg, section, runs: INPUTS)


@pytest.fixture
def probs(cfg, monkeypatch):
    """Probs files of epoch EPOCH without a record (as another program writes them); none is written here."""
    write_probs_files(cfg)
    monkeypatch.setattr(evaluation, "prepare_images", lambda cfg, epoch: 0)


def write_h5(path, **datasets):
    with h5py.File(path, "w") as f:
        for name, data in datasets.items():
            f.create_dataset(name, data=data)


def test_logit_scores_read_only_the_logits(cfg, tmp_path):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(19, 6, 8)).astype(np.float32)
    gt_train = np.zeros((6, 8), np.uint8)
    path = str(tmp_path / "probs0.hdf5")
    write_h5(path, logits=logits, gt_train_ids=gt_train)  # no probabilities: they are not read
    score, gt = image_outputs.probs_score(dataclasses.replace(cfg, score="energy"), path, "gt_train_ids")
    np.testing.assert_array_equal(score, energy_score(logits))
    np.testing.assert_array_equal(gt, gt_train)
    with pytest.raises(MetaOodError, match="missing dataset.*probabilities") as info:
        image_outputs.probs_score(cfg, path)
    assert path in str(info.value)


def test_entropy_reads_the_probabilities_and_a_missing_logit_is_explained(cfg, tmp_path):
    probs = np.full((19, 4, 4), 1 / 19, np.float32)
    path = str(tmp_path / "probs0.hdf5")
    write_h5(path, probabilities=probs, image_path="images/0.png")
    score, image_path = image_outputs.probs_score(cfg, path, "image_path")
    np.testing.assert_array_equal(score, normalized_entropy(probs))
    assert image_path == "images/0.png"
    with pytest.raises(MetaOodError, match="missing dataset.*logits.*--store_logits"):
        image_outputs.probs_score(dataclasses.replace(cfg, score="maxlogit"), path)


def test_plot_names_keep_runs_of_other_settings_apart(cfg):
    trained = dataclasses.replace(cfg, val_epoch=4, pareto_alpha=0.9, entropy_threshold=0.7, cv="loo")
    assert paths.summary_plot_file(trained, "roc_pr").endswith(
        "fs_eval/roc_pr_epoch_4_alpha_0.9_entropy.png")
    other_run = dataclasses.replace(trained, val_epoch=2, pareto_alpha=0.5)
    assert paths.summary_plot_file(other_run, "roc_pr") != paths.summary_plot_file(trained, "roc_pr")
    assert paths.panel_file(trained, 4, 3).endswith("fs_eval/epoch_4_alpha_0.9_t0.7_loo/image_0003_entropy.png")
    panels = {paths.panel_file(dataclasses.replace(trained, **change), 4, 3)
              for change in ({}, {"entropy_threshold": 0.5}, {"cv": "image"}, {"cv": "kfold"})}
    assert len(panels) == 4


def test_meta_row_of_a_baseline_only_run_shows_the_baseline_pixel_metrics():
    metrics = {"auroc": 0.9, "fpr95": 0.2, "auprc": 0.5}
    results = {"pixel": {"baseline": {"paper": metrics, "exact": metrics}},
               "segment": {"baseline": {"fp": 3, "fn": 1}, "meta": {"fp": 1, "fn": 2}}}
    meta_row = next(line for line in evaluation.results_table(results).splitlines()
                    if line.startswith("+ meta classification"))
    assert meta_row.split()[3:8] == ["90.00", "20.00", "50.00", "1", "2"]


def test_results_of_earlier_runs_of_other_evaluations_are_kept(cfg, monkeypatch, fixed_inputs):
    monkeypatch.setattr(evaluation, "prepare_images", lambda cfg, epoch: 0)
    pixel = {"baseline": {p: {"auroc": 0.9, "fpr95": 0.2, "auprc": 0.5} for p in ("paper", "exact")}}
    monkeypatch.setattr(evaluation, "pixel_evaluation", lambda cfg: pixel)
    monkeypatch.setattr(evaluation, "segment_evaluation", lambda cfg: {"baseline": {"fp": 3, "fn": 1}})
    monkeypatch.setattr(evaluation, "miou_evaluation", lambda cfg: {"baseline": {"miou": 0.7}})
    evaluation.evaluate(cfg, pixel=True, segment=True)
    monkeypatch.setattr(evaluation, "segment_evaluation", lambda cfg: {"baseline": {"fp": 2, "fn": 0}})
    results = evaluation.evaluate(dataclasses.replace(cfg, bins=50), pixel=False, segment=True, miou=True)
    assert results["pixel"] == pixel and results["miou"] == {"baseline": {"miou": 0.7}}
    assert results["segment"] == {"baseline": {"fp": 2, "fn": 0}}
    # each section keeps the settings of the run that computed it
    assert results["configs"]["pixel"] == {"settings": {"score": "entropy", "bins": 10000}, "inputs": INPUTS}
    assert results["configs"]["segment"] == {"settings": {"entropy_threshold": 0.7, "cv": "loo"}, "inputs": INPUTS}
    assert read_json(paths.evaluation_file(cfg), "evaluation results", "evaluation.py") == results
    with open(paths.table_file(cfg)) as f:
        baseline_row = next(line for line in f if line.startswith("baseline"))
    assert baseline_row.split()[1:] == ["90.00", "20.00", "50.00", "2", "0", "-", "70.00"]


def _damaged(path, content=b'{"trunc'):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(content)
    return path


def _one_line_error(call, path, rerun):
    with pytest.raises(MetaOodError) as info:
        call()
    message = str(info.value)
    assert message.startswith(f"{path}: ") and message.endswith(f"Delete it and run {rerun} again")
    assert "\n" not in message


def test_damaged_saved_histograms_are_a_one_line_error(cfg, probs):
    path = _damaged(paths.histograms_file(cfg, EPOCH))
    _one_line_error(lambda: evaluation.score_histograms(cfg, EPOCH), path,
                    "evaluation.py -pixel (with the same settings)")
    edges, counts = np.linspace(0, 1, 11), np.zeros(10, np.int64)
    write_npz(path, {"paper_edges": edges, "paper_in": counts, "paper_out": counts})
    _one_line_error(lambda: evaluation.score_histograms(cfg, EPOCH), path,
                    "evaluation.py -pixel (with the same settings)")
    write_npz(path, {f"{p}_{k}": a for p in ("paper", "exact") for k, a in
                     (("edges", edges), ("in", counts), ("out", counts[:-1]))})
    with pytest.raises(MetaOodError, match=r"paper edges, counts in and out float64 \(11,\), int64 \(10,\), "
                                           r"int64 \(9,\); expected score histograms"):
        evaluation.score_histograms(cfg, EPOCH)


def test_saved_histograms_are_read_back(cfg, probs):
    edges, counts_in, counts_out = np.linspace(0, 1, 11), np.arange(10), np.arange(10)[::-1].copy()
    write_npz(paths.histograms_file(cfg, EPOCH), {f"{p}_{k}": a for p in ("paper", "exact") for k, a in
                                                  (("edges", edges), ("in", counts_in), ("out", counts_out))})
    for edges_got, in_got, out_got in evaluation.score_histograms(cfg, EPOCH).values():
        np.testing.assert_array_equal(edges_got, edges)
        np.testing.assert_array_equal(in_got, counts_in)
        np.testing.assert_array_equal(out_got, counts_out)


def test_a_damaged_miou_file_is_a_one_line_error(cfg, demo_data):
    cfg = dataclasses.replace(cfg, cityscapes_root=str(demo_data["Cityscapes"]))
    path = _damaged(paths.miou_file(cfg, 0), b'{"class_iou": []}')
    _one_line_error(lambda: evaluation.miou_of_epoch(cfg, 0), path, "evaluation.py -miou (with the same settings)")


def test_a_damaged_results_file_is_a_one_line_error(cfg, monkeypatch):
    monkeypatch.setattr(evaluation, "prepare_images", lambda cfg, epoch: pytest.fail("evaluated before reading"))
    monkeypatch.setattr(evaluation, "pixel_evaluation", lambda cfg: pytest.fail("evaluated before reading"))
    path = _damaged(paths.evaluation_file(cfg), b"\x80\x04 a pickle")
    _one_line_error(lambda: evaluation.evaluate(cfg), path, "evaluation.py (with the same settings)")


def test_evaluation_removes_what_a_killed_evaluation_left(cfg, monkeypatch, fixed_inputs):
    cfg = dataclasses.replace(cfg, val_epoch=1)
    monkeypatch.setattr(evaluation, "prepare_images", lambda cfg, epoch: 0)
    for name in ("pixel_evaluation", "segment_evaluation", "miou_evaluation"):
        monkeypatch.setattr(evaluation, name, lambda cfg: {})
    written = [paths.evaluation_file(cfg), paths.histograms_file(cfg, 1), paths.miou_file(cfg, 0),
               paths.summary_plot_file(cfg, "roc_pr"), paths.panel_file(cfg, 0, 2),
               paths.panel_file(cfg, 1, 0)]
    left = [killed_while_writing(path) for path in written]
    evaluation.evaluate(cfg, miou=True)
    assert not any(os.path.exists(path) for path in left)

# ---------------------------------------------------------------- SegmentMeIfYouCan

def test_smiyc_labels_and_the_meta_classified_score():
    gt_train = np.array([[1, 2, 0, 255]], np.uint8)  # LostAndFound's train ids: 1 in, 2 OoD, 0 neither
    np.testing.assert_array_equal(evaluation.smiyc_labels(gt_train, 1, 2), [[0, 1, 255, 255]])
    score = np.array([[0.9, 0.8, 0.7, 0.6, 0.5]], np.float32)
    components = np.array([[1, -1, 2, 0, -3]], np.int32)  # + inner, - boundary pixels of segments 1..3
    np.testing.assert_array_equal(evaluation.meta_classified_score(score, components, {1, 3}, 0.0),
                                  np.array([[0, 0, 0.7, 0.6, 0]], np.float32))
    np.testing.assert_array_equal(evaluation.meta_classified_score(score, components, set(), 0.0), score)
    # removed pixels get the lower end of a bounded score, the frame's minimum of an unbounded one
    cfg = default_config()
    assert evaluation.removed_score(cfg, score) == 0.0
    assert evaluation.removed_score(dataclasses.replace(cfg, score="energy"), score - 3) == pytest.approx(-2.5)


def test_the_table_shows_the_leaderboard_columns_apart_from_meta_oods_own_component_metrics():
    figures = {"ap": 0.5, "fpr95": 0.25, "siou_gt": 0.4, "ppv": 0.3, "mean_f1": 0.2}
    results = {"smiyc": {"config": {"track": "obstacle"}, "baseline": figures, "meta": {**figures, "ap": 0.6}},
               "segment": {"baseline": {"fp": 3, "fn": 1, "components_of_metaood_segments": {"mean_f1": 0.1}}}}
    blocks = evaluation.results_table(results).split("\n\n")
    leaderboard = next(b for b in blocks if b.startswith("SegmentMeIfYouCan protocol, obstacle track"))
    assert [line.split() for line in leaderboard.splitlines()[1:]] == [
        ["AP", "FPR95", "sIoU", "gt", "PPV", "mean", "F1"], ["baseline", "50.00", "25.00", "40.00", "30.00", "20.00"],
        ["+", "meta", "classification", "60.00", "25.00", "40.00", "30.00", "20.00"]]
    own = next(b for b in blocks if b.startswith("component metrics of Meta-OoD's segments (entropy threshold; "
                                                 "not the leaderboard's protocol)"))
    assert own.splitlines()[2].split() == ["baseline", "-", "-", "10.00"]
    assert not any("SegmentMeIfYouCan" in b for b in evaluation.results_table({"segment": results["segment"]})
                   .split("\n\n"))
