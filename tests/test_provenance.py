"""Stale outputs are never reused: each cached output records the identity of its inputs (weights,
data, settings); a change computes what it affects again with one log line (training refuses and
names --restart), an unchanged re-run computes and rewrites nothing, and each section of the
results file keeps the settings and inputs it was computed with."""
import dataclasses
import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

import meta_classification
from src import paths, provenance
from src.dataset import Fishyscapes, LostAndFound
from src.errors import run_main
from src.evaluation import evaluate, score_histograms
from src.inference import prepare_images
from src.model import build_network, read_checkpoint
from src.segment_search import SegmentSearchError, run_segment_search
from src.settings import default_config
from src.training import TrainingError, train

MODEL = "DeepLabV3+_MobileNetV3"
# Files every evaluation writes again (README, Outputs): the results file and table, the per-image
# table, the summary plots; and the logs.
REWRITTEN = ("evaluation_", "per_image_", "score_histograms_", "roc_pr_")


def network_file(path, seed) -> str:
    """A random network whose scores vary from pixel to pixel (a sharpened classifier)."""
    torch.manual_seed(seed)
    network = build_network(MODEL, 19)
    state = network.state_dict()
    state["final.6.weight"] *= 1000
    torch.save({"state_dict": state}, path)
    return str(path)


def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture
def cfg(demo_data, tmp_path):
    """The baseline of a random network on a copy of the tiny LostAndFound-like set (the tests change
    its files), with the mIoU on the Cityscapes-like val split; probs files (--store_probs), the
    `compact` fixture the default outputs."""
    shutil.copytree(demo_data["LostAndFound"], tmp_path / "lost_and_found")
    return dataclasses.replace(default_config(), MODEL=MODEL, io_root=str(tmp_path / "io"),
                               init_ckpt=network_file(tmp_path / "a.pth", 0),
                               lostandfound_root=str(tmp_path / "lost_and_found"),
                               cityscapes_root=str(demo_data["Cityscapes"]), val_epoch=0, inference_batch_size=4,
                               num_workers=0, segment_workers=1, panels=1, store_probs=True)


@pytest.fixture
def compact(cfg):
    return dataclasses.replace(cfg, store_probs=False)


@pytest.fixture
def news(caplog):
    """The log lines so far that tell of outputs computed again, dropped or of unknown inputs."""
    caplog.set_level(logging.INFO)

    def lines():
        words = ("computing", "without a record", "dropped", "deleted", "used as they are")
        found = [m for m in caplog.messages if any(w in m for w in words)]
        caplog.clear()
        return found
    return lines


def cached_files(cfg) -> dict:
    """Path -> (mtime_ns, sha256) of every file below io_root that a re-run may reuse."""
    files = [p for p in Path(cfg.io_root).rglob("*") if p.is_file() and "logs" not in p.parts
             and not p.name.startswith(REWRITTEN)]
    return {str(p): (p.stat().st_mtime_ns, sha256(p)) for p in files}


def probs_files(cfg):
    return sorted(Path(paths.probs_dir(cfg, 0)).glob("probs*.hdf5"))


@pytest.mark.parametrize("storage", ["probs", "compact"])
def test_an_unchanged_rerun_computes_and_rewrites_nothing(cfg, news, storage):
    cfg = dataclasses.replace(cfg, store_probs=storage == "probs")
    first = evaluate(cfg, miou=True)
    before = cached_files(cfg)
    records = [p for p in before if p.endswith("identity.json")]
    # probs or (labels, score maps, histogram shares); segments, meta classifier, results (histograms), miou, panels
    assert len(records) == (6 if storage == "probs" else 8)
    assert paths.weights_hash_cache(cfg) in before
    assert len([p for p in before if p.endswith(".hdf5")]) == (4 if storage == "probs" else 0)
    news()
    assert evaluate(cfg, miou=True) == first
    assert cached_files(cfg) == before
    assert news() == []


def test_another_starting_checkpoint_computes_everything_of_the_baseline_again(cfg, tmp_path, news):
    argv = ["-prepare", "-val", "LostAndFound", "-epoch", "0", "-model", MODEL, "--io_root", cfg.io_root,
            "--lostandfound_root", cfg.lostandfound_root, "--num_workers", "0", "--store_probs"]
    assert run_main(meta_classification.main, [*argv, "--init_ckpt", cfg.init_ckpt]) == 0
    evaluate(cfg, miou=True)
    before = {p: sha256(p) for p in probs_files(cfg)}
    news()
    other = network_file(tmp_path / "b.pth", 1)
    assert run_main(meta_classification.main, [*argv, "--init_ckpt", other]) == 0
    a, b = sha256(cfg.init_ckpt)[:8], sha256(other)[:8]
    assert news() == [f"probs of baseline: the weights changed (sha256 {a}.. -> {b}..): computing all 4 images again"]
    assert all(sha256(p) != digest for p, digest in before.items())
    results = evaluate(dataclasses.replace(cfg, init_ckpt=other), miou=True)
    lines = news()
    for what in ("segment search of baseline_t0.7: the probs changed", "meta classifier baseline_t0.7_loo: the "
                 "segment search outputs changed", "histograms of baseline: the probs changed",
                 f"mIoU of baseline: the weights changed (sha256 {a}.. -> {b}..)",
                 "panels of baseline_t0.7_loo: the meta classifier result changed"):
        assert len([line for line in lines if line.startswith(what)]) == 1, (what, lines)
    assert len(lines) == 5
    for section in ("pixel", "segment", "miou"):
        assert results["configs"][section]["inputs"]["weights"] == {"baseline": {"sha256": sha256(other)}}


def test_a_rewritten_label_file_computes_only_its_image_again(cfg, news):
    assert prepare_images(cfg, 0) == 4
    before = {str(p): (p.stat().st_mtime_ns, sha256(p)) for p in probs_files(cfg)}
    label = LostAndFound(cfg.lostandfound_root).targets[2]
    labels = np.array(Image.open(label))
    labels[:8] = 1  # "free space": in-distribution road
    Image.fromarray(labels).save(label)
    news()
    assert prepare_images(cfg, 0) == 1
    assert news() == [f"probs of baseline: 1 of 4 images changed (probs2.hdf5: the data changed (label {label} "
                      "changed)): computing them again"]
    changed = paths.probs_file(cfg, 0, 2)
    assert {p: v for p, v in before.items() if p != changed} == {
        str(p): (p.stat().st_mtime_ns, sha256(p)) for p in probs_files(cfg) if str(p) != changed}
    with h5py.File(changed, "r") as f:
        np.testing.assert_array_equal(f["gt_label_ids"][()], labels)


def test_compact_outputs_of_another_checkpoint_are_computed_again(compact, tmp_path, news):
    evaluate(compact, miou=True)
    score_maps = sorted(Path(paths.score_map_file(compact, 0, 0)).parent.glob("*.npz"))
    before = {p: sha256(p) for p in score_maps}
    news()
    other = dataclasses.replace(compact, init_ckpt=network_file(tmp_path / "b.pth", 1))
    assert prepare_images(other, 0) == 4
    a, b = sha256(compact.init_ckpt)[:8], sha256(other.init_ckpt)[:8]
    assert news() == [f"labels of baseline: the weights changed (sha256 {a}.. -> {b}..): computing all 4 images again"]
    assert len(before) == 4 and all(sha256(p) != digest for p, digest in before.items())
    evaluate(other, miou=True)
    lines = news()
    for what in ("meta classifier baseline_t0.7_loo: the segment search outputs changed",
                 "histograms of baseline: the probs changed", "mIoU of baseline: the weights changed",
                 "panels of baseline_t0.7_loo: the meta classifier result changed"):
        assert len([line for line in lines if line.startswith(what)]) == 1, (what, lines)
    assert len(lines) == 4  # the prepare stage wrote the segments again, recorded


def test_a_rewritten_label_file_computes_only_its_compact_outputs_again(compact, news):
    assert prepare_images(compact, 0) == 4
    files = [p for p in Path(compact.io_root).rglob("*.npz")]
    before = {str(p): (p.stat().st_mtime_ns, sha256(p)) for p in files}
    label = LostAndFound(compact.lostandfound_root).targets[2]
    Image.fromarray(np.array(Image.open(label))[::-1].copy()).save(label)
    news()
    assert prepare_images(compact, 0) == 1
    assert news() == [f"labels of baseline: 1 of 4 images changed (0002.npz: the data changed (label {label} "
                      "changed)): computing them again"]
    after = {str(p): (p.stat().st_mtime_ns, sha256(p)) for p in files}
    changed = sorted(p for p in before if after[p] != before[p])
    assert changed and all(os.path.basename(p) == "0002.npz" for p in changed)
    assert len(changed) == 7  # 4 segment files, score map, histogram shares, labels


def test_another_threshold_runs_the_network_again_for_the_compact_segments(compact, caplog):
    caplog.set_level(logging.INFO)
    assert prepare_images(compact, 0) == 4
    labels = {str(p): p.stat().st_mtime_ns for p in Path(paths.labels_dir(compact, 0)).glob("*.npz")}
    other = dataclasses.replace(compact, entropy_threshold=0.5)
    with pytest.raises(SegmentSearchError, match="meta_classification.py -prepare with this -threshold"):
        run_segment_search(other, 0, LostAndFound.train_id_out)
    caplog.clear()
    assert prepare_images(other, 0) == 4
    assert any(m.startswith("4 of them run through the network again for their segments at entropy threshold 0.5, "
                            "missing or of other inputs") for m in caplog.messages), caplog.messages
    assert {str(p): p.stat().st_mtime_ns for p in Path(paths.labels_dir(compact, 0)).glob("*.npz")} == labels
    assert run_segment_search(other, 0, LostAndFound.train_id_out) == (0, 4)
    assert prepare_images(other, 0) == 0 and prepare_images(compact, 0) == 0


def _pixels(cfg):
    """In- and out-of-distribution pixels the baseline's exact histograms count."""
    _, counts_in, counts_out = score_histograms(cfg, 0)["exact"]
    return int(counts_in.sum() + counts_out.sum())


def test_the_pixel_metrics_follow_the_image_set(cfg, tmp_path, news):
    dataset = LostAndFound(cfg.lostandfound_root)
    pixels = [int(np.isin(dataset.train_ids(i), (dataset.train_id_in, dataset.train_id_out)).sum())
              for i in range(len(dataset))]
    full = evaluate(cfg, segment=False)["pixel"]
    assert _pixels(cfg) == sum(pixels)
    aside = tmp_path / "aside"
    aside.mkdir()
    for i in (2, 3):  # the last two frames leave the set
        for path in (dataset.images[i], dataset.targets[i]):
            shutil.move(path, aside / os.path.basename(path))
    news()
    evaluate(cfg, segment=False)
    lines = news()
    assert "probs of baseline: deleted the outputs of 2 images no longer in the set" in lines
    assert any(line.startswith("histograms of baseline: the probs changed (images 4 -> 2, ") for line in lines)
    assert len(probs_files(cfg)) == 2 and _pixels(cfg) == sum(pixels[:2])
    for i in (2, 3):
        for path in (dataset.images[i], dataset.targets[i]):
            shutil.move(aside / os.path.basename(path), path)
    assert evaluate(cfg, segment=False)["pixel"] == full and _pixels(cfg) == sum(pixels)


def test_each_section_of_the_results_keeps_its_own_settings(cfg, tmp_path, news):
    evaluate(dataclasses.replace(cfg, bins=50), segment=False)
    results = evaluate(cfg, pixel=False, segment=True)
    assert results["configs"]["pixel"]["settings"] == {"score": "entropy", "bins": 50}
    assert results["configs"]["segment"]["settings"] == {"entropy_threshold": 0.7, "cv": "loo"}
    table = Path(paths.table_file(cfg)).read_text()
    assert table.splitlines()[0] == (f"{MODEL} on LostAndFound; pixel (score entropy, bins 50); "
                                     "segment (entropy threshold 0.7, cv loo)")
    assert "pixel metrics, exact protocol (50 bins)" in table
    results = evaluate(dataclasses.replace(cfg, cv="kfold", folds=2), pixel=True, segment=False)
    assert results["configs"]["pixel"]["settings"]["bins"] == 10000
    assert results["configs"]["segment"]["settings"] == {"entropy_threshold": 0.7, "cv": "loo"}
    # the network changes: an mIoU run drops the sections computed with the other one
    news()
    other = dataclasses.replace(cfg, init_ckpt=network_file(tmp_path / "b.pth", 1))
    results = evaluate(other, pixel=False, segment=False, miou=True)
    assert set(results) == {"configs", "miou"} and set(results["configs"]) == {"miou"}
    dropped = [line for line in news() if "section is dropped" in line]
    a, b = sha256(cfg.init_ckpt)[:8], sha256(other.init_ckpt)[:8]
    assert sorted(dropped) == [f"{paths.evaluation_file(cfg)}: the weights changed (baseline sha256 {a}.. -> {b}..): "
                               f"the {s} section is dropped (evaluation.py -{s} computes it again)"
                               for s in ("pixel", "segment")]
    assert Path(paths.table_file(cfg)).read_text().splitlines()[0] == f"{MODEL} on LostAndFound; miou"


def test_probs_with_logits_serve_runs_without_them(cfg, news):
    assert prepare_images(cfg, 0) == 4
    news()
    assert prepare_images(dataclasses.replace(cfg, store_logits=True), 0) == 4
    assert news() == ["probs of baseline: logits False -> True: computing all 4 images again"]
    before = {str(p): p.stat().st_mtime_ns for p in probs_files(cfg)}
    assert prepare_images(cfg, 0) == 0 and {str(p): p.stat().st_mtime_ns for p in probs_files(cfg)} == before


def test_outputs_without_a_record_are_used_with_one_line(cfg, news):
    """As the probs files of the reference implementation, which a user may point the tool at."""
    prepare_images(cfg, 0)
    os.remove(paths.identity_file(paths.probs_dir(cfg, 0)))
    before = {str(p): p.stat().st_mtime_ns for p in probs_files(cfg)}
    news()
    assert prepare_images(cfg, 0) == 0
    assert news() == [f"probs of baseline: 4 of 4 images in {paths.probs_dir(cfg, 0)} without a record of their "
                      "inputs (written by another program or an older version): used as they are"]
    assert run_segment_search(cfg, 0, LostAndFound.train_id_out) == (4, 0)
    assert {str(p): p.stat().st_mtime_ns for p in probs_files(cfg)} == before


def test_a_record_is_written_at_most_once_a_second_and_when_its_block_ends(tmp_path):
    """A killed run leaves the entries of its last outputs unset (null): they are computed again."""
    wanted = {str(tmp_path / f"{i:04d}.npz"): {"n": i} for i in range(3)}
    record = provenance.Record(tmp_path, "outputs")
    assert record.pending(wanted) == list(wanted)

    def on_disk():
        return json.loads(Path(paths.identity_file(tmp_path)).read_text())
    with record:
        for path in wanted:
            Path(path).write_bytes(b"")
            record.done(path)
        assert on_disk() == {f"{i:04d}.npz": None for i in range(3)}  # within its first second
    assert on_disk() == {f"{i:04d}.npz": {"n": i} for i in range(3)}
    assert provenance.Record(tmp_path, "outputs").pending(wanted) == []


def test_the_weights_are_hashed_once(cfg, monkeypatch):
    assert provenance.weights_identity(cfg, cfg.init_ckpt) == {"sha256": sha256(cfg.init_ckpt)}
    monkeypatch.setattr(provenance, "_sha256_of_file", lambda path: pytest.fail("hashed again"))
    assert provenance.weights_identity(cfg, cfg.init_ckpt) == {"sha256": sha256(cfg.init_ckpt)}
    assert provenance.weights_identity(cfg, cfg.init_ckpt + ".missing") is None


def test_a_fishyscapes_static_frame_is_identified_by_its_overlay_too(demo_official):
    dataset = Fishyscapes(demo_official["Fishyscapes"], "Static", cityscapes_root=demo_official["Cityscapes"])
    files = provenance.item_files(dataset, 0)
    assert set(files) == {"image", "label", "overlay"} and files["overlay"].endswith("_rgb.npz")


# ---------------------------------------------------------------- training

@pytest.fixture
def training(demo_data, tmp_path):
    """One iteration per epoch from a saved random start on a copy of the Cityscapes-like scenes."""
    shutil.copytree(demo_data["Cityscapes"], tmp_path / "cityscapes")
    return dataclasses.replace(
        default_config(), MODEL=MODEL, io_root=str(tmp_path / "io"), cityscapes_root=str(tmp_path / "cityscapes"),
        coco_root=str(demo_data["COCO"]), init_ckpt=network_file(tmp_path / "a.pth", 0), crop_size=32,
        batch_size=2, max_iters=1, num_workers=0, num_training_epochs=1, learning_rate=1e-3,
        ood_subsampling_factor=0.5)


def test_a_run_of_other_starting_weights_or_data_is_not_resumed(training, tmp_path):
    train(training)
    other = network_file(tmp_path / "b.pth", 1)
    a, b = sha256(training.init_ckpt)[:8], sha256(other)[:8]
    with pytest.raises(TrainingError, match=rf"epoch_1_alpha_0.9.pth is of a run with other inputs \(the starting "
                                            rf"weights changed \(sha256 {a}.. -> {b}..\)\): --restart trains from "
                                            r"epoch 0 again, deleting this run's later checkpoints; or choose "
                                            r"another --weights_dir$"):
        train(dataclasses.replace(training, init_ckpt=other, num_training_epochs=2))
    image = sorted(Path(training.cityscapes_root, "leftImg8bit", "train").rglob("*.png"))[-1]
    for path in (image, *Path(training.cityscapes_root, "gtFine").rglob(image.name.split("_leftImg8bit")[0] + "*")):
        os.remove(path)
    with pytest.raises(TrainingError, match=r"other inputs \(the data changed \(images (\d+) -> (?!\1)\d+, sha256"):
        train(dataclasses.replace(training, num_training_epochs=2))


def test_restart_trains_again_from_the_new_start(training, tmp_path):
    train(dataclasses.replace(training, num_training_epochs=3))
    restarted = dataclasses.replace(training, init_ckpt=network_file(tmp_path / "b.pth", 1), num_training_epochs=2,
                                    restart=True)
    assert train(restarted).epochs == [1, 2]
    assert not os.path.exists(paths.checkpoint_path(training, 3))  # of the old start: deleted
    for epoch in (1, 2):
        saved = read_checkpoint(paths.checkpoint_path(training, epoch))["provenance"]
        assert saved["origin"] == {"sha256": sha256(restarted.init_ckpt)}
    assert train(dataclasses.replace(restarted, restart=False)).epochs == []  # an ordinary re-run continues
