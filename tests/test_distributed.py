"""meta_classification.py -prepare and evaluation.py (with the mIoU, and a SegmentMeIfYouCan
submission) under torchrun with 2 CPU processes (gloo): the images are split between them and
every output equals one process's."""
import os
import subprocess
import sys
from pathlib import Path

import evaluation
import meta_classification
from src.errors import run_main
from tests.test_image_outputs import MODEL, checkpoint  # noqa: F401 (fixture)
from tests.test_training import _free_port

REPO = Path(__file__).resolve().parents[1]


def _argv(root, checkpoint, demo_data):
    # batch 1: both runs feed the network the same batches whatever the split
    return ["-val", "LostAndFound", "-epoch", "0", "-model", MODEL, "--io_root", str(root), "--init_ckpt", checkpoint,
            "--lostandfound_root", str(demo_data["LostAndFound"]), "--cityscapes_root", str(demo_data["Cityscapes"]),
            "--num_workers", "0", "--segment_workers", "1", "-batch", "1"]


def _torchrun(script, argv):
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port",
               str(_free_port()), script, *argv]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout


def _outputs(root):
    """Relative path -> content of every output but the logs."""
    files = {}
    for path in sorted(Path(root).rglob("*")):
        relative = path.relative_to(root).as_posix()
        if path.is_file() and not relative.startswith("logs/"):
            files[relative] = path.read_bytes()
    return files


def test_two_processes_split_the_images_and_write_what_one_process_writes(tmp_path, checkpoint, demo_data):
    one, two = tmp_path / "one", tmp_path / "two"
    assert run_main(meta_classification.main, [*_argv(one, checkpoint, demo_data), "-prepare"]) == 0
    assert run_main(evaluation.main, [*_argv(one, checkpoint, demo_data), "-pixel", "-segment", "-miou"]) == 0
    _torchrun("meta_classification.py", [*_argv(two, checkpoint, demo_data), "-prepare"])
    table = _torchrun("evaluation.py", [*_argv(two, checkpoint, demo_data), "-pixel", "-segment", "-miou"])
    expected, got = _outputs(one), _outputs(two)
    assert sorted(got) == sorted(expected) and any("/miou/" in name for name in got)
    assert got == expected
    assert table.count(f"{MODEL} on LostAndFound; pixel") == 1  # printed by the first process only
    # each process ran its share through the network and wrote its own log
    logs = {path.name: path.read_text() for path in (two / "logs").glob("meta_classification_*.log")}
    assert len(logs) == 2 and sum(name.endswith("_rank1.log") for name in logs) == 1
    assert sum("LostAndFound: 4 of 4 images to run through the network" in text for text in logs.values()) == 1
    assert all(f"process {rank} of 2: 2 of the 4 images to run" in logs[name] for rank, name in enumerate(sorted(logs)))


def test_two_processes_write_the_submission_of_one(tmp_path, checkpoint, demo_smiyc):
    """A test split's submission: both splits prepared by the two processes, the files by the first."""
    def argv(root):
        return ["-val", "RoadAnomaly21", "--roadanomaly21_split", "test", "-epoch", "0", "-model", MODEL,
                "--io_root", str(root), "--init_ckpt", checkpoint, "--roadanomaly21_root",
                demo_smiyc["RoadAnomaly21"], "--num_workers", "0", "--segment_workers", "1", "-batch", "1",
                "--submission"]
    one, two = tmp_path / "one", tmp_path / "two"
    assert run_main(evaluation.main, argv(one)) == 0
    _torchrun("evaluation.py", argv(two))
    expected, got = _outputs(one), _outputs(two)
    assert any("/smiyc_submission/" in f"/{name}" for name in got) and any("_novoid/" in name for name in got)
    assert got == expected
