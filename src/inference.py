"""The network on an evaluation set: logits in batches, the prepare stage's per-image outputs
(src/image_outputs.py: compact ones by default, probs files with --store_probs).

Files are written atomically, so a re-run only computes the images still missing, and those whose
recorded weights or data changed (src/provenance.py).
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
from src.image_outputs import PendingOutputs, written_folders
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


def _check_finite(logits, group, dataset, checkpoint) -> None:
    """InferenceError unless the network's outputs on the images of `group` are finite numbers."""
    finite = torch.isfinite(logits).flatten(1).all(dim=1)
    if not finite.all():
        image = dataset.images[group[int(torch.nonzero(~finite)[0])][0]]
        raise InferenceError(f"the network's outputs on {image} are not finite (NaN or inf): the weights of "
                             f"{checkpoint} hold NaN or inf values, or overflow")


def _outputs(model, items, cfg: RunConfig, device, desc, checkpoint):
    """Yields (item, logits float32 (C,H,W) on `device`) per item of `items` (an _Indexed), in batches of
    cfg.inference_batch_size, under bf16 autocast with cfg.amp bf16; a progress bar on the main process.
    `checkpoint`, the file of the network's weights, is named if its outputs are not finite."""
    loader = DataLoader(items, batch_size=cfg.inference_batch_size, num_workers=cfg.num_workers,
                        collate_fn=_same_size_groups, pin_memory=device.type == "cuda")
    shown = None if current_process().is_main else True
    with torch.inference_mode(), progress(total=len(items), desc=desc, disable=shown) as bar:
        for groups in loader:
            for group in groups:
                images = torch.stack([item[1] for item in group]).to(device, non_blocking=True)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.amp == "bf16"):
                    logits = model(images).float()
                _check_finite(logits, group, items.dataset, checkpoint)
                yield from zip(group, logits)
                bar.update(len(group))


def network_outputs(model, dataset, indices, cfg: RunConfig, device, checkpoint, desc="inference"):
    """Yields (index, logits float32 (C,H,W) on `device`, train ids uint8 (H,W)) per image, in batches."""
    for (i, _, gt_train), logits in _outputs(model, _Indexed(dataset, indices), cfg, device, desc, checkpoint):
        yield i, logits, gt_train


def network_at_epoch(cfg: RunConfig, epoch: int, num_classes: int, device):
    """The evaluated network of `epoch` (0: baseline), in eval mode on `device`."""
    return load_network(cfg.MODEL, num_classes, network_checkpoint(cfg, epoch), device=device)


def prepare_images(cfg: RunConfig, epoch: int) -> int:
    """The prepare stage: runs the network on every image of cfg.VALSET whose outputs are missing or
    were computed from other weights or data, and writes them (src/image_outputs.py); returns how
    many images this process ran.

    Under torchrun each process takes its own share of the images (distributed.own_share) and
    every process returns once all of them are done. The first process decides what is pending
    and keeps the records (src/provenance.py); the others read its decision.
    """
    proc = current_process()
    dataset = build_dataset(cfg.VALSET, cfg)
    if proc.is_main:  # before any process writes: another's temporary file is no stale one
        for folder in written_folders(cfg, epoch):
            remove_stale_temporaries(folder)
        outputs = PendingOutputs(cfg, epoch, dataset)
    wait_for_all()
    if not proc.is_main:
        outputs = PendingOutputs(cfg, epoch, dataset, decided=True)
    share = own_share(outputs.pending, proc)
    if proc.world_size > 1:
        logger.info("process %d of %d: %d of the %d images to run", proc.rank, proc.world_size, len(share),
                    len(outputs.pending))
    if share:
        model = network_at_epoch(cfg, epoch, dataset.num_classes, proc.device)
        items = _Indexed(dataset, share, label_ids=True)
        try:
            for (i, _, gt_train, gt_label), logits in _outputs(model, items, cfg, proc.device, "prepare",
                                                               paths.evaluated_checkpoint(cfg, epoch)):
                outputs.write(i, logits, gt_train, gt_label, dataset.images[i], record=proc.world_size == 1)
        finally:
            outputs.flush()
    wait_for_all()
    if proc.is_main and proc.world_size > 1:
        outputs.record_all()
    return len(share)
