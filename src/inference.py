"""The network on an evaluation set: logits in batches, the prepare stage's per-image outputs
(src/image_outputs.py: compact ones by default, probs files with --store_probs).

Files are written atomically, so a re-run only computes the images still missing.
"""
import logging
import os

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from src import paths
from src.atomic import remove_stale_temporaries
from src.dataset import build_dataset
from src.distributed import current_process, own_share, wait_for_all
from src.errors import MetaOodError
from src.image_outputs import missing_outputs, write_image_outputs, written_folders
from src.model import load_network
from src.run_log import progress
from src.settings import RunConfig

logger = logging.getLogger(__name__)


class InferenceError(MetaOodError):
    pass


def network_checkpoint(cfg: RunConfig, epoch: int) -> str:
    """Weights evaluated at `epoch`: the init checkpoint for 0 (baseline), else the OoD-trained one."""
    path = paths.evaluated_checkpoint(cfg, epoch)
    if not os.path.exists(path):
        what = "baseline (--init_ckpt)" if epoch == 0 else f"OoD-trained epoch {epoch} (ood_training.py or --ckpt)"
        raise InferenceError(f"checkpoint of the {what} not found: {path}")
    return path


class _Indexed(Dataset):
    """Items of `dataset` at `indices`: (index, image, train ids uint8 numpy), plus the label ids
    uint8 numpy when asked for, read here so that the DataLoader workers read them in parallel."""

    def __init__(self, dataset, indices, label_ids=False):
        self.dataset, self.indices, self.label_ids = dataset, indices, label_ids

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, k):
        i = self.indices[k]
        image, target = self.dataset[i]
        item = (i, image, target.numpy().astype(np.uint8))
        return item + (self.dataset.label_ids(i),) if self.label_ids else item


def _same_size_groups(batch):
    """Splits a batch into runs of equally sized images (sets may mix sizes)."""
    groups = {}
    for item in batch:
        groups.setdefault(tuple(item[1].shape), []).append(item)
    return list(groups.values())


def _outputs(model, items, cfg: RunConfig, device, desc):
    """Yields (item, logits float32 (C,H,W) on `device`) per item of `items` (an _Indexed), in batches of
    cfg.inference_batch_size, under bf16 autocast with cfg.amp bf16; a progress bar on the main process."""
    loader = DataLoader(items, batch_size=cfg.inference_batch_size, num_workers=cfg.num_workers,
                        collate_fn=_same_size_groups, pin_memory=device.type == "cuda")
    shown = None if current_process().is_main else True
    with torch.inference_mode(), progress(total=len(items), desc=desc, disable=shown) as bar:
        for groups in loader:
            for group in groups:
                images = torch.stack([item[1] for item in group]).to(device, non_blocking=True)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.amp == "bf16"):
                    logits = model(images)
                yield from zip(group, logits.float())
                bar.update(len(group))


def network_outputs(model, dataset, indices, cfg: RunConfig, device, desc="inference"):
    """Yields (index, logits float32 (C,H,W) on `device`, train ids uint8 (H,W)) per image, in batches."""
    for (i, _, gt_train), logits in _outputs(model, _Indexed(dataset, indices), cfg, device, desc):
        yield i, logits, gt_train


def network_at_epoch(cfg: RunConfig, epoch: int, num_classes: int, device):
    """The evaluated network of `epoch` (0: baseline), in eval mode on `device`."""
    return load_network(cfg.MODEL, num_classes, network_checkpoint(cfg, epoch), device=device)


def _log_pending(cfg, epoch, share, missing):
    """The log line of the prepare stage; it says why images that were prepared before run again."""
    pending = [i for i in share if missing[i]]
    again = [i for i in pending if os.path.exists(paths.labels_file(cfg, epoch, i))]
    where = paths.probs_dir(cfg, epoch) if cfg.store_probs else paths.compact_dir(cfg, epoch)
    logger.info("%s: %d of %d images to run through the network (%s)", cfg.VALSET, len(pending), len(share), where)
    if again:
        lacking = sorted({what for i in again for what in missing[i]})
        logger.info("%d of them run through the network again: their compact outputs lack %s (compact outputs "
                    "keep what the settings they were written with need; with --store_probs the whole softmax "
                    "is kept and another -threshold, --score or --bins needs no network)", len(again),
                    " and ".join(lacking))


def prepare_images(cfg: RunConfig, epoch: int) -> int:
    """The prepare stage: runs the network on every image of cfg.VALSET whose outputs are missing and
    writes them (src/image_outputs.py); returns how many images this process ran.

    Under torchrun each process takes its own share of the images (distributed.own_share) and
    every process returns once all of them are done.
    """
    proc = current_process()
    if proc.is_main:  # before any process writes: another's temporary file is no stale one
        for folder in written_folders(cfg, epoch):
            remove_stale_temporaries(folder)
    wait_for_all()
    dataset = build_dataset(cfg.VALSET, cfg)
    share = own_share(range(len(dataset)), proc)
    missing = {i: missing_outputs(cfg, epoch, i) for i in share}
    _log_pending(cfg, epoch, share, missing)
    pending = [i for i in share if missing[i]]
    if pending:
        model = network_at_epoch(cfg, epoch, dataset.num_classes, proc.device)
        items = _Indexed(dataset, pending, label_ids=True)
        for (i, _, gt_train, gt_label), logits in _outputs(model, items, cfg, proc.device, "prepare"):
            write_image_outputs(cfg, epoch, i, logits, gt_train, gt_label, dataset.images[i])
    wait_for_all()
    return len(pending)
