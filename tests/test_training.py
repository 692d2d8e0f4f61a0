"""OoD training: checkpoints, resuming, determinism, non-finite losses, DistributedDataParallel."""
import dataclasses
import hashlib
import json
import os
import socket
import subprocess
import sys
import zipfile

import pytest
import torch

from src import paths, training
from src.atomic import read_json_lines
from src.dataset import CityscapesCOCO
from src.model import CheckpointError, load_network, read_checkpoint
from src.settings import default_config
from src.training import TrainingError, adam, train
from tests.test_atomic import killed_while_writing

MODEL = "DeepLabV3+_MobileNetV3"


@pytest.fixture
def cfg(demo_data, tmp_path):
    """Two iterations of batch 2 per epoch on the tiny generated set, from random weights."""
    return dataclasses.replace(
        default_config(), MODEL=MODEL, io_root=str(tmp_path / "io"), cityscapes_root=str(demo_data["Cityscapes"]),
        coco_root=str(demo_data["COCO"]), crop_size=32, batch_size=2, max_iters=2, num_workers=0,
        num_training_epochs=1, learning_rate=1e-3, ood_subsampling_factor=0.5, no_init_ckpt=True)


def test_two_iterations_write_a_checkpoint_that_loads_strictly(cfg):
    summary = train(cfg)
    path = paths.checkpoint_path(cfg, 1)
    assert summary.checkpoints_written == [path] and len(summary.iteration_losses) == 2
    saved = read_checkpoint(path)
    assert set(saved) == {"epoch", "state_dict", "optimizer_state_dict", "loss", "config", "provenance"}
    assert saved["epoch"] == 1 and saved["config"]["pareto_alpha"] == 0.9
    assert saved["loss"] == pytest.approx(sum(summary.iteration_losses) / 2)
    model = load_network(MODEL, 19, path, device="cpu")
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, saved["state_dict"][key])
    assert [f for f in os.listdir(paths.weights_dir(cfg)) if f.startswith(".tmp")] == []


def test_training_removes_what_a_killed_run_left(cfg):
    left = killed_while_writing(paths.checkpoint_path(cfg, 1))
    train(cfg)
    assert sorted(os.listdir(paths.weights_dir(cfg))) == sorted(
        os.path.basename(p) for p in (paths.checkpoint_path(cfg, 1), paths.loss_record_file(cfg)))
    assert not os.path.exists(left)


def _sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_the_same_run_writes_the_same_checkpoint_bytes(cfg):
    """Given a path, torch.save names the archive's records after the file: the random temporary name."""
    path = paths.checkpoint_path(cfg, 1)
    train(cfg)
    first = _sha256(path)
    os.remove(path)
    train(cfg)
    assert _sha256(path) == first
    assert {name.split("/")[0] for name in zipfile.ZipFile(path).namelist()} == {"archive"}
    load_network(MODEL, 19, path, device="cpu")  # strict: every key and shape fits


def test_resume_restores_the_optimizer_and_continues_the_same_run(cfg, tmp_path):
    straight = train(dataclasses.replace(cfg, num_training_epochs=2))
    first = dataclasses.replace(cfg, io_root=str(tmp_path / "resumed"))
    train(first)
    checkpoint = paths.checkpoint_path(first, 1)
    model = load_network(MODEL, 19, checkpoint, device="cpu", train=True)
    optimizer = adam(model, first, read_checkpoint(checkpoint))
    restored = optimizer.state_dict()["state"]
    saved = read_checkpoint(checkpoint)["optimizer_state_dict"]["state"]
    assert restored.keys() == saved.keys() and len(saved) > 0
    for index in saved:
        for name in ("exp_avg", "exp_avg_sq", "step"):
            torch.testing.assert_close(restored[index][name], saved[index][name], rtol=0, atol=0)

    resumed = train(dataclasses.replace(first, training_starting_epoch=1))
    assert resumed.epochs == [2]
    assert resumed.iteration_losses == straight.iteration_losses[2:]
    final_straight = read_checkpoint(paths.checkpoint_path(cfg, 2))["state_dict"]
    final_resumed = read_checkpoint(paths.checkpoint_path(first, 2))["state_dict"]
    for key in final_straight:
        torch.testing.assert_close(final_resumed[key], final_straight[key], rtol=0, atol=0)


def test_losses_are_recorded_per_iteration_and_epoch_and_a_resumed_run_replaces_later_epochs(cfg):
    two = train(dataclasses.replace(cfg, num_training_epochs=2))
    lines = read_json_lines(paths.loss_record_file(cfg), "losses", "ood_training.py")
    assert lines == [{"epoch": 1, "iteration": 1, "loss": two.iteration_losses[0]},
                     {"epoch": 1, "iteration": 2, "loss": two.iteration_losses[1]},
                     {"epoch": 1, "mean_loss": two.losses[0], "iterations": 2},
                     {"epoch": 2, "iteration": 1, "loss": two.iteration_losses[2]},
                     {"epoch": 2, "iteration": 2, "loss": two.iteration_losses[3]},
                     {"epoch": 2, "mean_loss": two.losses[1], "iterations": 2}]
    os.remove(paths.checkpoint_path(cfg, 2))  # epoch 2 is trained again from the checkpoint of epoch 1
    train(dataclasses.replace(cfg, training_starting_epoch=1))
    assert read_json_lines(paths.loss_record_file(cfg), "losses", "ood_training.py") == lines


def test_rerun_continues_after_the_last_saved_epoch(cfg):
    train(cfg)
    again = train(dataclasses.replace(cfg, num_training_epochs=2))
    assert again.epochs == [2]


def test_a_finished_run_returns_before_loading_data_or_network(cfg, monkeypatch):
    """Only the training set's file list is read, to check that the checkpoint is of the same data."""
    train(cfg)

    def not_needed(*args, **kwargs):
        raise AssertionError("loaded although every epoch is saved")
    monkeypatch.setattr(CityscapesCOCO, "raw_item", not_needed)
    monkeypatch.setattr(training, "load_network", not_needed)
    summary = train(cfg)
    assert summary.epochs == summary.checkpoints_written == summary.iteration_losses == []


def test_a_resumed_run_reads_its_checkpoint_once(cfg, monkeypatch):
    train(cfg)
    real_load, reads = torch.load, []

    def counted(path, *args, **kwargs):
        reads.append(str(path))
        return real_load(path, *args, **kwargs)
    monkeypatch.setattr(torch, "load", counted)
    train(dataclasses.replace(cfg, num_training_epochs=2))
    assert reads == [paths.checkpoint_path(cfg, 1)]


def test_a_bad_init_checkpoint_fails_before_the_data_set_is_read(cfg, tmp_path):
    unfit = tmp_path / "unfit.pth"
    torch.save({"state_dict": {"x": torch.zeros(1)}}, unfit)
    broken = dataclasses.replace(cfg, no_init_ckpt=False, init_ckpt=str(unfit),
                                 cityscapes_root=str(tmp_path / "no_cityscapes"))
    with pytest.raises(CheckpointError, match=r"checkpoint .*unfit.pth does not fit"):
        train(broken)


def test_max_iters_loads_only_the_batches_it_trains_on(cfg, monkeypatch):
    loaded, real_item = [], CityscapesCOCO.__getitem__

    def counted(dataset, i):
        loaded.append(i)
        return real_item(dataset, i)
    monkeypatch.setattr(CityscapesCOCO, "__getitem__", counted)
    summary = train(cfg)
    assert len(summary.samples_seen) == 4 and loaded == summary.samples_seen  # no third batch


def test_same_seed_same_losses_other_seed_other_losses(cfg, tmp_path):
    one = train(cfg).iteration_losses
    two = train(dataclasses.replace(cfg, io_root=str(tmp_path / "again"))).iteration_losses
    other = train(dataclasses.replace(cfg, io_root=str(tmp_path / "other"), seed=1)).iteration_losses
    assert one == two
    assert one != other


def test_non_finite_loss_stops_and_keeps_the_last_checkpoint(cfg, monkeypatch):
    train(cfg)
    good = paths.checkpoint_path(cfg, 1)
    before = open(good, "rb").read()

    def poisoned(logits, *args, **kwargs):
        return (logits * float("nan")).mean()
    monkeypatch.setattr(training, "entropy_maximization_loss", poisoned)
    with pytest.raises(TrainingError, match=r"non-finite loss \(nan\) at epoch 2, iteration 1; stopped"):
        train(dataclasses.replace(cfg, training_starting_epoch=1))
    assert open(good, "rb").read() == before
    assert not os.path.exists(paths.checkpoint_path(cfg, 2))


def test_a_checkpoint_of_other_settings_is_not_resumed(cfg):
    train(cfg)
    with pytest.raises(TrainingError, match=r"is of a run with other inputs \(learning_rate 0.001 -> 0.01\): "
                                            r"--restart trains from epoch 0 again"):
        train(dataclasses.replace(cfg, learning_rate=1e-2))


def test_missing_init_checkpoint_is_an_error_not_a_random_start(cfg):
    missing = dataclasses.replace(cfg, no_init_ckpt=False, init_ckpt=os.path.join(cfg.io_root, "none.pth"))
    with pytest.raises(TrainingError, match=r"initial checkpoint .*none.pth does not exist \(--init_ckpt; "
                                            r"--no_init_ckpt starts from random weights on purpose\)"):
        train(missing)


def test_resuming_a_missing_epoch_names_the_file(cfg):
    with pytest.raises(TrainingError, match=r"cannot resume from epoch 3: .*_epoch_3_alpha_0.9.pth does not exist"):
        train(dataclasses.replace(cfg, training_starting_epoch=3))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_rank(rank, cfg, port, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE="2")
    torch.set_num_threads(1)
    summary = train(cfg)
    torch.distributed.destroy_process_group()
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(dataclasses.asdict(summary), f)


def test_distributed_ranks_split_the_data_and_only_rank_0_saves(cfg, tmp_path):
    torch.multiprocessing.spawn(_ddp_rank, args=(cfg, _free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [json.load(open(tmp_path / f"rank{r}.json")) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    seen = [set(r["samples_seen"]) for r in ranks]
    assert len(ranks[0]["samples_seen"]) == len(ranks[1]["samples_seen"]) == 4  # 2 iterations x batch 2
    assert not seen[0] & seen[1]
    assert ranks[0]["checkpoints_written"] == [paths.checkpoint_path(cfg, 1)]
    assert ranks[1]["checkpoints_written"] == []
    # the epoch's mean loss is over both ranks' iterations, on every rank and in the checkpoint
    mean = sum(ranks[0]["iteration_losses"] + ranks[1]["iteration_losses"]) / 4
    assert ranks[0]["losses"] == ranks[1]["losses"] == [pytest.approx(mean)]
    assert read_checkpoint(paths.checkpoint_path(cfg, 1))["loss"] == pytest.approx(mean)
    state = read_checkpoint(paths.checkpoint_path(cfg, 1))["state_dict"]
    assert not any(k.startswith("module.") for k in state)
    load_network(MODEL, 19, paths.checkpoint_path(cfg, 1), device="cpu")


def test_the_script_runs_under_torchrun(cfg):
    argv = ["-model", MODEL, "--io_root", cfg.io_root, "--cityscapes_root", cfg.cityscapes_root,
            "--coco_root", cfg.coco_root, "-crop", "32", "-batch", "2", "--max_iters", "1", "--num_workers", "0",
            "-nepochs", "1", "--no_init_ckpt", "--ood_subsampling_factor", "0.5"]
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port",
               str(_free_port()), "ood_training.py", *argv]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, cwd=paths_repo(), env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(os.listdir(paths.weights_dir(cfg))) == sorted(
        os.path.basename(p) for p in (paths.checkpoint_path(cfg, 1), paths.loss_record_file(cfg)))


def paths_repo():
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_bf16_autocast_trains_with_a_float32_loss(cfg):
    summary = train(dataclasses.replace(cfg, amp="bf16"))
    assert len(summary.iteration_losses) == 2 and all(0 < v < 1 for v in summary.iteration_losses)
    assert read_checkpoint(paths.checkpoint_path(cfg, 1))["state_dict"]["final.6.weight"].dtype == torch.float32
