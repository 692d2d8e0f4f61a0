"""Entropy-maximization training (docs/METHOD.md §2): the loop behind ood_training.py.

One code path for one process and for `torchrun --nproc_per_node=N` (DistributedDataParallel):
the data are always split by a DistributedSampler (1 replica when not distributed).

Every epoch starts from a seed derived from (seed, epoch, rank), so a run resumed from the
checkpoint of epoch e continues exactly as the uninterrupted run would have, provided it has the
same --num_workers and number of processes: both decide which random draws go to which image.
"""
import dataclasses
import itertools
import logging
import os
import re
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from src import paths, provenance
from src.atomic import atomic_path, read_json_lines, remove_stale_temporaries, write_json_lines
from src.run_log import progress
from src.errors import MetaOodError
from src.dataset import DATASETS, build_dataset, training_transform
from src.dataset.base import image_size
from src.loss import entropy_maximization_loss
from src.distributed import current_process
from src.model import checkpoint_state_dict, load_network, read_checkpoint
from src.settings import RunConfig

logger = logging.getLogger(__name__)

# Settings that change what an epoch computes: a checkpoint written under other values is not
# resumed silently.
_RUN_DEFINING = ("TRAINSET", "MODEL", "pareto_alpha", "learning_rate", "crop_size", "batch_size",
                 "ood_subsampling_factor", "seed", "coco_background_void", "amp", "max_iters")


class TrainingError(MetaOodError):
    pass


@dataclass
class TrainSummary:
    """What a training process did (one per rank)."""
    rank: int
    world_size: int
    epochs: list = field(default_factory=list)
    losses: list = field(default_factory=list)          # mean loss per epoch
    iteration_losses: list = field(default_factory=list)
    samples_seen: list = field(default_factory=list)    # dataset indices, in order
    checkpoints_written: list = field(default_factory=list)


def _epoch_seed(cfg: RunConfig, epoch: int, rank: int) -> int:
    return int(np.random.SeedSequence([cfg.seed, epoch, rank]).generate_state(1)[0])


def _epoch_generator(cfg, epoch, rank) -> torch.Generator:
    """The DataLoader generator of `epoch` (it seeds the workers). Also seeds torch's global
    generator, which draws the transforms when there are no workers."""
    seed = _epoch_seed(cfg, epoch, rank)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def _resume_point(cfg: RunConfig) -> tuple:
    """(epoch, checkpoint) of the last finished epoch of this run that is saved, else (the starting
    epoch, None); the checkpoint is returned so that its file is read only once.

    Re-running an interrupted command continues after its last saved epoch; a checkpoint of a run
    with other settings, starting weights or training data is an error rather than a silent mix of
    two runs (--restart trains again instead).
    """
    first, last = cfg.training_starting_epoch, cfg.training_starting_epoch + cfg.num_training_epochs
    if cfg.restart:  # the later checkpoints are deleted (train): none is resumed
        return first, None
    for epoch in range(last, first, -1):
        path = paths.checkpoint_path(cfg, epoch)
        if os.path.exists(path):
            saved = read_checkpoint(path)
            changed = _changes(cfg, path, saved)
            if changed:
                raise TrainingError(f"{path} is of a run with other inputs ({changed}): --restart trains from "
                                    f"epoch {first} again, deleting this run's later checkpoints; or choose "
                                    "another --weights_dir")
            return epoch, saved
    return first, None


def _changes(cfg: RunConfig, path, saved) -> str:
    """What differs between the run that saved `saved` (at `path`) and this one: the run-defining
    settings, the starting weights, the training data; '' if nothing."""
    settings = saved.get("config", {})
    recorded = {k: settings[k] for k in _RUN_DEFINING if k in settings}
    now = {k: getattr(cfg, k) for k in recorded}
    if "provenance" not in saved:
        logger.info("%s has no record of its starting weights and training data (written by an older "
                    "version): only its settings are compared", path)
        return provenance.changes(recorded, now)
    identity = provenance.training_identity(cfg, build_dataset(cfg.TRAINSET, cfg))
    return provenance.changes({**recorded, **saved["provenance"]}, {**now, **identity})


def _later_checkpoints(cfg: RunConfig) -> list:
    """The checkpoints of this run (network, alpha) of the epochs after -epoch."""
    folder = paths.weights_dir(cfg)
    found = [re.search(r"_epoch_(\d+)_", name) for name in (os.listdir(folder) if os.path.isdir(folder) else [])]
    epochs = sorted({int(m.group(1)) for m in found if m and int(m.group(1)) > cfg.training_starting_epoch})
    return [paths.checkpoint_path(cfg, e) for e in epochs if os.path.exists(paths.checkpoint_path(cfg, e))]


def _starting_checkpoint(cfg: RunConfig, epoch: int, saved):
    """(path, contents) of the checkpoint the network of `epoch` starts from: `saved` when the
    resume point read it already; (None, None), random weights, only when asked for explicitly."""
    if saved is not None:
        return paths.checkpoint_path(cfg, epoch), saved
    if epoch > 0:
        path = paths.checkpoint_path(cfg, epoch)
        if not os.path.exists(path):
            raise TrainingError(f"cannot resume from epoch {epoch}: {path} does not exist")
    elif cfg.no_init_ckpt:
        return None, None
    else:
        path = paths.init_ckpt_path(cfg)
        if not os.path.exists(path):
            raise TrainingError(f"initial checkpoint {path} does not exist (--init_ckpt; "
                                "--no_init_ckpt starts from random weights on purpose)")
    return path, read_checkpoint(path)


def adam(model, cfg: RunConfig, resumed_checkpoint=None):
    """The optimizer; resuming restores its state (moments, step counts) from `resumed_checkpoint`,
    the contents of a checkpoint file of this run (read_checkpoint)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    if resumed_checkpoint:
        optimizer.load_state_dict(resumed_checkpoint["optimizer_state_dict"])
    return optimizer


def _network_and_optimizer(cfg: RunConfig, proc, epoch: int, saved):
    """The network (on proc.device, in train mode) and its optimizer at the start of `epoch`.

    Built before the training set is scanned, so that a bad checkpoint is reported first.
    """
    path, checkpoint = _starting_checkpoint(cfg, epoch, saved)
    torch.manual_seed(cfg.seed)  # the random start of --no_init_ckpt is reproducible too
    model = load_network(cfg.MODEL, DATASETS[cfg.TRAINSET].num_classes, path, device=proc.device, train=True,
                         checkpoint=checkpoint)
    return model, adam(model, cfg, checkpoint if epoch > 0 else None)


def _loader(dataset, cfg, proc, generator):
    sampler = DistributedSampler(dataset, num_replicas=proc.world_size, rank=proc.rank,
                                 shuffle=True, seed=cfg.seed, drop_last=True)
    return DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler, drop_last=True,
                      num_workers=cfg.num_workers, generator=generator,
                      pin_memory=proc.device.type == "cuda")


def _warn_if_upscaled(images, crop_size) -> None:
    """One warning when training images are smaller than the crop: the transform upscales them to
    crop x crop first (ResizeIfSmaller), as the reference did, which changes their scale."""
    smaller = [(path, size) for path, size in ((p, image_size(p)) for p in images) if min(size) < crop_size]
    if smaller:
        path, (width, height) = smaller[0]
        logger.warning("-crop %d: %d of the first epoch's %d training images have a side below %d px (e.g. %s, "
                       "%dx%d); they are upscaled to %dx%d before the crop, as the reference does", crop_size,
                       len(smaller), len(images), crop_size, path, width, height, crop_size, crop_size)


def _all_finite(loss, proc) -> bool:
    finite = torch.isfinite(loss.detach()).to(torch.float32)
    if proc.world_size > 1:
        dist.all_reduce(finite, op=dist.ReduceOp.MIN)
    return bool(finite.item())


def _mean_over_processes(total: float, count: int, device) -> float:
    """The mean of the losses of every process, not only this one's share of the data."""
    if dist.is_initialized():
        sums = torch.tensor([total, count], dtype=torch.float64, device=device)
        dist.all_reduce(sums)
        total, count = sums.tolist()
    return total / count


def _save(cfg, proc, model, optimizer, epoch, loss, identity, summary):
    if not proc.is_main:
        return
    path = paths.checkpoint_path(cfg, epoch)
    # Into an open file: given a path, torch.save names the archive's records after the file, here
    # the random temporary name; given a file object, always `archive`, so the same run gives the same bytes.
    # A full disk then also fails with the OSError of Python's write (torch's own writer says "unexpected pos").
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save({"epoch": epoch,
                    "state_dict": checkpoint_state_dict(model, cfg.MODEL),
                    "optimizer_state_dict": optimizer.state_dict(),
                    "loss": loss,
                    "config": dataclasses.asdict(cfg),
                    "provenance": identity}, f)
    summary.checkpoints_written.append(path)
    logger.info("saved %s (epoch %d, mean loss %.6f)", path, epoch, loss)


def _record_losses(cfg, epoch, iteration_losses, mean_loss):
    """Appends the epoch to the loss record beside the checkpoints (JSON lines): one line per
    iteration (of the first process) and one with the epoch's mean over all processes. Lines of
    this or later epochs from an earlier run that was stopped or restarted are replaced."""
    path = paths.loss_record_file(cfg)
    earlier = read_json_lines(path, "training losses", "ood_training.py") if os.path.exists(path) else []
    kept = [line for line in earlier if line.get("epoch", epoch) < epoch]
    new = [{"epoch": epoch, "iteration": k + 1, "loss": value} for k, value in enumerate(iteration_losses)]
    write_json_lines(path, kept + new + [{"epoch": epoch, "mean_loss": mean_loss, "iterations": len(new)}])


def _train_epoch(cfg, proc, model, optimizer, dataset, epoch, summary):
    """(mean loss over every process, this process's loss per iteration) of one epoch."""
    generator = _epoch_generator(cfg, epoch, proc.rank)
    dataset.set_epoch(epoch)
    loader = _loader(dataset, cfg, proc, generator)
    loader.sampler.set_epoch(epoch)
    indices = list(loader.sampler)
    model.train()
    losses = []
    iterations = min(cfg.max_iters, len(loader)) if cfg.max_iters else len(loader)
    bar = progress(itertools.islice(loader, iterations), desc=f"epoch {epoch + 1}", total=iterations,
                   disable=None if proc.is_main else True)
    for it, (images, targets) in enumerate(bar):
        summary.samples_seen.extend(indices[it * cfg.batch_size:(it + 1) * cfg.batch_size])
        images = images.to(proc.device, non_blocking=True)
        targets = targets.to(proc.device, non_blocking=True)
        with torch.autocast(proc.device.type, dtype=torch.bfloat16, enabled=cfg.amp == "bf16"):
            logits = model(images)
        loss = entropy_maximization_loss(logits, targets, cfg.pareto_alpha,
                                         num_classes=dataset.num_classes,
                                         ood_id=dataset.train_id_out, void_id=dataset.void_id)
        if not _all_finite(loss, proc):
            raise TrainingError(f"non-finite loss ({loss.item()}) at epoch {epoch + 1}, iteration "
                                f"{it + 1}; stopped, the last saved checkpoint is kept")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        summary.iteration_losses.append(losses[-1])
        bar.set_postfix(loss=f"{np.mean(losses):.5f}")
    if not losses:
        raise TrainingError(f"epoch {epoch + 1} had no batch: {len(dataset)} images for "
                            f"{proc.world_size} process(es) x batch size {cfg.batch_size}")
    return _mean_over_processes(sum(losses), len(losses), proc.device), losses


def train(cfg: RunConfig) -> TrainSummary:
    """Trains `cfg.num_training_epochs` epochs and saves a checkpoint after each."""
    proc = current_process()
    summary = TrainSummary(proc.rank, proc.world_size)
    start, saved = _resume_point(cfg)
    end = cfg.training_starting_epoch + cfg.num_training_epochs
    if proc.is_main:
        remove_stale_temporaries(paths.weights_dir(cfg))
        if cfg.restart:
            for path in _later_checkpoints(cfg):
                os.remove(path)
                logger.info("--restart: deleted %s", path)
        if start == end:
            logger.info("nothing to train: epoch %d, the last of this run, is done", end)
        elif start > cfg.training_starting_epoch:
            logger.info("resuming after epoch %d from %s", start, paths.checkpoint_path(cfg, start))
    if start == end:
        return summary
    model, optimizer = _network_and_optimizer(cfg, proc, start, saved)
    del saved  # a copy of the weights and of Adam's state: not kept in memory while training
    dataset = build_dataset(cfg.TRAINSET, cfg, transform=training_transform(cfg.crop_size))
    if proc.is_main:
        _warn_if_upscaled(dataset.images, cfg.crop_size)
    identity = provenance.training_identity(cfg, dataset)
    if proc.world_size > 1:
        model = DistributedDataParallel(model, device_ids=[proc.device.index] if proc.device.type == "cuda" else None)
    for epoch in range(start, end):
        loss, iteration_losses = _train_epoch(cfg, proc, model, optimizer, dataset, epoch, summary)
        summary.epochs.append(epoch + 1)
        summary.losses.append(loss)
        _save(cfg, proc, model, optimizer, epoch + 1, loss, identity, summary)
        if proc.is_main:
            _record_losses(cfg, epoch + 1, iteration_losses, loss)
    return summary
