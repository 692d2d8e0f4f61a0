"""The evaluation stages' own logic on small files written here: probs reading, names, results."""
import dataclasses
import json
import os

import h5py
import numpy as np
import pytest

from src import evaluation, image_outputs, paths
from src.atomic import read_json, write_npz
from src.errors import MetaOodError
from src.scores import energy_score, normalized_entropy
from src.settings import default_config
from tests.test_atomic import killed_while_writing


@pytest.fixture
def cfg(tmp_path):
    return dataclasses.replace(default_config(), io_root=str(tmp_path), VALSET="Fishyscapes")


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


def test_results_of_earlier_runs_of_other_evaluations_are_kept(cfg, monkeypatch):
    monkeypatch.setattr(evaluation, "prepare_images", lambda cfg, epoch: 0)
    pixel = {"baseline": {p: {"auroc": 0.9, "fpr95": 0.2, "auprc": 0.5} for p in ("paper", "exact")}}
    monkeypatch.setattr(evaluation, "pixel_evaluation", lambda cfg: pixel)
    monkeypatch.setattr(evaluation, "segment_evaluation", lambda cfg: {"baseline": {"fp": 3, "fn": 1}})
    monkeypatch.setattr(evaluation, "miou_evaluation", lambda cfg: {"baseline": {"miou": 0.7}})
    evaluation.evaluate(cfg, pixel=True, segment=True)
    monkeypatch.setattr(evaluation, "segment_evaluation", lambda cfg: {"baseline": {"fp": 2, "fn": 0}})
    results = evaluation.evaluate(dataclasses.replace(cfg, bins=50), pixel=False, segment=True, miou=True)
    assert results["pixel"] == pixel and results["miou"] == {"baseline": {"miou": 0.7}}
    assert results["segment"] == {"baseline": {"fp": 2, "fn": 0}} and results["config"]["bins"] == 50
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


def test_damaged_saved_histograms_are_a_one_line_error(cfg):
    path = _damaged(paths.histograms_file(cfg, 0))
    _one_line_error(lambda: evaluation.score_histograms(cfg, 0), path, "evaluation.py -pixel (with the same settings)")
    edges, counts = np.linspace(0, 1, 11), np.zeros(10, np.int64)
    write_npz(path, {"paper_edges": edges, "paper_in": counts, "paper_out": counts})
    _one_line_error(lambda: evaluation.score_histograms(cfg, 0), path, "evaluation.py -pixel (with the same settings)")
    write_npz(path, {f"{p}_{k}": a for p in ("paper", "exact") for k, a in
                     (("edges", edges), ("in", counts), ("out", counts[:-1]))})
    with pytest.raises(MetaOodError, match=r"paper edges, counts in and out float64 \(11,\), int64 \(10,\), "
                                           r"int64 \(9,\); expected score histograms"):
        evaluation.score_histograms(cfg, 0)


def test_saved_histograms_are_read_back(cfg):
    edges, counts_in, counts_out = np.linspace(0, 1, 11), np.arange(10), np.arange(10)[::-1].copy()
    write_npz(paths.histograms_file(cfg, 0), {f"{p}_{k}": a for p in ("paper", "exact") for k, a in
                                                    (("edges", edges), ("in", counts_in), ("out", counts_out))})
    for edges_got, in_got, out_got in evaluation.score_histograms(cfg, 0).values():
        np.testing.assert_array_equal(edges_got, edges)
        np.testing.assert_array_equal(in_got, counts_in)
        np.testing.assert_array_equal(out_got, counts_out)


def test_a_damaged_miou_file_is_a_one_line_error(cfg):
    path = _damaged(paths.miou_file(cfg, 0), b'{"class_iou": []}')
    _one_line_error(lambda: evaluation.miou_of_epoch(cfg, 0), path, "evaluation.py -miou (with the same settings)")


def test_a_damaged_results_file_is_a_one_line_error(cfg, monkeypatch):
    monkeypatch.setattr(evaluation, "prepare_images", lambda cfg, epoch: pytest.fail("evaluated before reading"))
    monkeypatch.setattr(evaluation, "pixel_evaluation", lambda cfg: pytest.fail("evaluated before reading"))
    path = _damaged(paths.evaluation_file(cfg), b"\x80\x04 a pickle")
    _one_line_error(lambda: evaluation.evaluate(cfg), path, "evaluation.py (with the same settings)")


def test_evaluation_removes_what_a_killed_evaluation_left(cfg, monkeypatch):
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
