"""The user workflow end to end: the demo at tiny sizes through the three scripts, every output
of every stage, an interrupted demo that finishes with the same table, and killed steps that
finish with the same files."""
import csv
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from src.compact_file import read_image_histograms, read_labels, read_score_map
from src.segment_files import read_components, read_metrics
from tests.process_testing import group_processes, killed

REPO = Path(__file__).resolve().parents[1]
MODEL = "DeepLabV3+_MobileNetV3"
DEMO = [sys.executable, "preparation/demo.py", "--quick"]


def _demo(root, **kwargs):
    return subprocess.run([*DEMO, "--root", str(root)], cwd=REPO, capture_output=True, text=True,
                          timeout=900, **kwargs)


def _tables(stdout):
    """The final tables the demo prints (everything after its last step)."""
    return stdout[stdout.index("Meta-OoD demo finished"):].split("\n", 2)[2]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo_run")
    done = _demo(root)
    assert done.returncode == 0, done.stderr[-4000:]
    return root, done.stdout


def _files(folder, pattern):
    found = sorted(Path(folder).glob(pattern))
    assert found, f"nothing matches {pattern} in {folder}"
    return found


def test_every_stage_writes_outputs_that_parse(demo_run):
    root, stdout = demo_run
    io = root / "io" / f"meta_ood_{MODEL}"
    # data preparation
    for mask in _files(root / "datasets" / "COCO" / "2017" / "annotations" / "ood_seg_train2017", "*.png"):
        assert set(np.unique(np.array(Image.open(mask)))) <= {0, 254}
    # training: baseline (alpha 0) and entropy maximization (alpha 0.9)
    for name in (f"{MODEL}_epoch_2_alpha_0.0.pth", f"{MODEL}_epoch_1_alpha_0.9.pth"):
        saved = torch.load(io / "weights" / name, weights_only=True)
        assert {"epoch", "state_dict", "optimizer_state_dict", "loss", "config"} <= set(saved)
    for folder in ("laf_eval", "fs_eval"):
        for pattern in ("baseline", "epoch_1_alpha_0.9"):
            # meta classification: the compact outputs of the prepare stage, segment search, meta classifier
            compact = io / folder / "compact" / pattern
            assert not (io / folder / "probs").exists()
            for kind, read in (("labels", read_labels), ("score_entropy", read_score_map),
                               ("histograms_entropy_bins10000",
                                lambda p: read_image_histograms(p, {"paper": 100, "exact": 10000}))):
                assert len([read(p) for p in _files(compact / kind, "*.npz")]) in (3, 12)
            for kind, read in (("metrics", read_metrics), ("components", read_components)):
                for sub in (f"{pattern}_t0.7", f"{pattern}_t0.7_gt"):
                    for p in _files(io / folder / "metaseg_io" / kind / sub, "*.npz"):
                        read(p)  # checks keys, dtypes and shapes
            result = json.loads((io / folder / "metaseg_io" / "meta_classifier" / f"{pattern}_t0.7_loo.json").read_text())
            assert {"fp_before", "fn_before", "fp_after", "fn_after", "removed", "image_ids"} <= set(result)
            with np.load(_files(io / folder / "results", f"histograms_{pattern}_entropy_*.npz")[0]) as h:
                assert h["paper_in"].shape == (100,)
        # evaluation: numbers, table, pictures
        results = json.loads((io / folder / "results" / "evaluation_epoch_1_alpha_0.9_t0.7_entropy.json").read_text())
        assert {"configs", "pixel", "segment", "miou"} <= set(results)
        assert set(results["configs"]) == {"pixel", "segment", "miou"}
        assert set(results["pixel"]["trained"]) == {"paper", "exact"}
        table = (io / folder / "results" / "evaluation_epoch_1_alpha_0.9_t0.7_entropy.txt").read_text()
        assert table in stdout
        for png in _files(root / "io" / "plots" / f"{MODEL}_{folder}", "**/*.png"):
            assert Image.open(png).format == "PNG"
    for run in ("baseline", "epoch_1_alpha_0.9"):
        assert 0 <= json.loads((io / "miou" / f"cityscapes_val_{run}.json").read_text())["miou"] <= 1


def test_every_run_leaves_its_log_the_losses_and_a_per_image_table(demo_run):
    root, stdout = demo_run
    io = root / "io" / f"meta_ood_{MODEL}"
    assert "--quick: the networks are trained for a few iterations only" in stdout
    # one log file per script run: 2 trainings, 2 x 2 meta classifications, 2 evaluations
    logs = _files(root / "io" / "logs", "*.log")
    assert sorted({p.name.split("_2")[0] for p in logs}) == ["evaluation", "meta_classification", "ood_training"]
    assert len(logs) == 8
    for log in logs:
        lines = log.read_text().splitlines()
        versions = json.loads(next(line for line in lines if " versions: " in line).split(" versions: ")[1])
        assert set(versions) == {"python", "torch", "numpy", "commit"} and versions["torch"] == torch.__version__
        config = json.loads(next(line for line in lines if " configuration: " in line).split(" configuration: ")[1])
        assert config["io_root"] == str(root / "io") and config["MODEL"] == MODEL
    evaluation_log = next(p for p in logs if p.name.startswith("evaluation")).read_text()
    assert "results saved to" in evaluation_log and "\r" not in evaluation_log  # no progress bars in files
    # training losses: per iteration and per epoch, the epoch mean as in its checkpoint
    lines = [json.loads(line) for line in (io / "weights" / f"{MODEL}_alpha_0.0_losses.jsonl").read_text().splitlines()]
    for epoch in (1, 2):
        iterations = [line for line in lines if line["epoch"] == epoch and "iteration" in line]
        (summary,) = [line for line in lines if line["epoch"] == epoch and "mean_loss" in line]
        assert [line["iteration"] for line in iterations] == list(range(1, summary["iterations"] + 1))
        saved = torch.load(io / "weights" / f"{MODEL}_epoch_{epoch}_alpha_0.0.pth", weights_only=True)
        assert summary["mean_loss"] == pytest.approx(saved["loss"])
        assert summary["mean_loss"] == pytest.approx(np.mean([line["loss"] for line in iterations]))
    # per-image table: one row per image, summing to the meta classifier's counts
    for folder in ("laf_eval", "fs_eval"):
        for run in ("baseline", "epoch_1_alpha_0.9"):
            with open(io / folder / "results" / f"per_image_{run}_t0.7_loo.csv", newline="") as f:
                rows = list(csv.DictReader(f))
            result = json.loads((io / folder / "metaseg_io" / "meta_classifier" / f"{run}_t0.7_loo.json").read_text())
            assert [int(row["image"]) for row in rows] == result["image_ids"]
            for key in ("fp_before", "fp_after", "fn_before", "fn_after"):
                assert sum(int(row[key]) for row in rows) == result[key], (folder, run, key)
            assert sum(int(row["predicted_segments"]) for row in rows) == result["n_segments"]
            assert sum(int(row["removed_segments"]) for row in rows) == sum(result["removed"])
            for row in rows:
                assert os.path.isfile(row["image_file"])
                with Image.open(row["image_file"]) as image:
                    pixels = image.width * image.height
                assert int(row["in_pixels"]) + int(row["ood_pixels"]) + int(row["void_pixels"]) <= pixels
                assert int(row["predicted_ood_pixels"]) <= pixels

def test_no_output_is_a_pickle(demo_run):
    """Pickles run code when loaded: none is written (protocol 2 and later start with 0x80)."""
    root, _ = demo_run
    outputs = [p for p in (root / "io").rglob("*") if p.is_file()]
    assert len(outputs) > 100
    assert [p for p in outputs if p.read_bytes()[:1] == b"\x80"] == []


def _interrupt_when(root, path):
    """Starts the demo and stops it (Ctrl-C) as soon as `path` (relative to root) exists."""
    # A job started in the background by a shell inherits an ignored SIGINT; Ctrl-C must reach the demo.
    process = subprocess.Popen([*DEMO, "--root", str(root)], cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 600
    while not (root / path).exists():
        assert process.poll() is None and time.monotonic() < deadline, f"the demo never wrote {path}"
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGINT)
    assert process.wait(timeout=120) != 0


def test_an_interrupted_demo_finishes_with_the_same_table(demo_run, tmp_path):
    _, stdout = demo_run
    _interrupt_when(tmp_path, f"io/meta_ood_{MODEL}/weights/{MODEL}_epoch_1_alpha_0.0.pth")
    assert not list(tmp_path.glob(f"io/meta_ood_{MODEL}/weights/*alpha_0.9.pth"))
    laf = f"io/meta_ood_{MODEL}/laf_eval"
    # in the prepare stage, after its first image
    _interrupt_when(tmp_path, f"{laf}/compact/baseline/labels/0000.npz")
    assert not list(tmp_path.glob(f"{laf}/metaseg_io/meta_classifier/*"))
    done = _demo(tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    assert _tables(done.stdout) == _tables(stdout).replace(str(demo_run[0]), str(tmp_path))


# ---------------------------------------------------------------- killed steps
# Each test deletes the outputs of one step of the demo, kills the step (SIGKILL: none of its
# clean-up runs) at a point the file system shows, and runs the same command again: it must
# leave the uninterrupted demo's outputs, byte for byte, and no temporary file; no process of
# the killed step may stay (workers killed while they still import the script's modules end
# when they are done with it: seconds on a busy machine). The tests change and restore the
# demo's outputs, so they come last.
GONE_WITHIN = 30


def _command(stdout, script, *flags):
    """The demo's command (as it printed it) that runs `script` with the (flag, value) pairs `flags`."""
    commands = [line[2:].split() for line in stdout.splitlines() if line.startswith("$ ")]
    (found,) = [c for c in commands if c[0] == script and all(
        any(pair == flag for pair in zip(c, c[1:])) for flag in flags)]
    return found


def _removed(root, patterns):
    """Deletes the files matching the glob `patterns` below root; returns their sha256 by path."""
    files = sorted({p for pattern in patterns for p in root.glob(pattern) if p.is_file()})
    assert files, f"nothing matches {patterns}"
    digests = _digests(root, files)
    for path in files:
        path.unlink()
    return digests


def _digests(root, files):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _run_again(root, command, expected):
    done = subprocess.run([sys.executable, *command], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    assert _digests(root, [root / path for path in expected]) == expected
    assert list(root.rglob(".tmp-*")) == []


def test_a_killed_training_continues_to_the_same_checkpoints(demo_run):
    root, stdout = demo_run
    weights = root / "io" / f"meta_ood_{MODEL}" / "weights"
    command = _command(stdout, "ood_training.py", ("-alpha", "0.0"))  # the baseline: 2 epochs
    expected = _removed(root, [f"io/meta_ood_{MODEL}/weights/*_alpha_0.0.pth"])
    # while the first checkpoint is saved (its temporary file exists), or just after
    killed(command, lambda pid: any(p.name.startswith(".tmp-") or "_epoch_1_" in p.name for p in weights.iterdir()),
           GONE_WITHIN)
    assert not (weights / f"{MODEL}_epoch_2_alpha_0.0.pth").exists()
    _run_again(root, command, expected)


def test_a_killed_prepare_stage_continues_to_the_same_files(demo_run):
    root, stdout = demo_run
    laf = f"io/meta_ood_{MODEL}/laf_eval"
    command = _command(stdout, "meta_classification.py", ("-val", "LostAndFound"), ("-epoch", "0"))
    expected = _removed(root, [f"{laf}/compact/baseline/*/*", f"{laf}/metaseg_io/*/baseline_t0.7*/*",
                               f"{laf}/metaseg_io/meta_classifier/baseline_t0.7_*.json"])
    compact = root / laf / "compact" / "baseline"
    # while the first image's outputs are written: a temporary file or one of them exists
    killed(command, lambda pid: compact.is_dir() and any(any(folder.iterdir()) for folder in compact.iterdir()),
           GONE_WITHIN)
    assert len(list(compact.glob("labels/*.npz"))) < 12
    _run_again(root, command, expected)


def test_a_killed_segment_search_of_probs_files_continues_to_the_same_files(demo_run):
    """The segment search of probs files (--store_probs) with 2 workers, killed; run again, it leaves the
    files that the demo's compact prepare stage wrote, byte for byte."""
    root, stdout = demo_run
    laf = f"io/meta_ood_{MODEL}/laf_eval"
    command = _command(stdout, "meta_classification.py", ("-val", "LostAndFound"), ("-epoch", "1")) + ["--store_probs"]
    command[command.index("--segment_workers") + 1] = "2"  # the demo searches in-process
    done = subprocess.run([sys.executable, *command, "-prepare"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    probs = root / laf / "probs" / "epoch_1_alpha_0.9"
    assert len(list(probs.glob("probs*.hdf5"))) == 12
    expected = _removed(root, [f"{laf}/metaseg_io/*/epoch_1_alpha_0.9_t0.7*/*",
                               f"{laf}/metaseg_io/meta_classifier/epoch_1_alpha_0.9_t0.7_*.json"])
    metrics = root / laf / "metaseg_io" / "metrics" / "epoch_1_alpha_0.9_t0.7"
    # once the workers search (or, if the 12 images are done already, during the meta classifier's fits)
    killed(command, lambda pid: metrics.is_dir() and any(p.name != "identity.json" for p in metrics.iterdir()),
           GONE_WITHIN)
    _run_again(root, command, expected)
    for path in probs.iterdir():  # the demo's outputs as they were, for the tests after this one
        path.unlink()
    probs.rmdir()


def test_a_killed_evaluation_continues_to_the_same_pictures_and_numbers(demo_run):
    root, stdout = demo_run
    plots = root / "io" / "plots" / f"{MODEL}_laf_eval"
    command = _command(stdout, "evaluation.py", ("-val", "LostAndFound"))
    expected = _removed(root, [f"io/plots/{MODEL}_laf_eval/**/*.png", f"io/meta_ood_{MODEL}/laf_eval/results/*"])
    killed(command, lambda pid: any(plots.rglob(".tmp-*.png")), GONE_WITHIN)  # while a picture is being written
    _run_again(root, command, expected)
