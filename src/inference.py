"""Softmax outputs of a network on an evaluation set, one probs file per image (src/probs_file.py).

Files are written atomically, so a re-run only computes the images still missing, and those whose
recorded weights or data changed (src/provenance.py).
"""
import logging
import os

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from src import paths, provenance
from src.atomic import remove_stale_temporaries
from src.run_log import progress
from src.dataset import build_dataset
from src.errors import MetaOodError
from src.model import default_device, load_network
from src.probs_file import write_probs_file
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


def _outputs(model, items, batch_size, num_workers, device, desc, checkpoint):
    """Yields (item, logits float32 (C,H,W) on `device`) per item of `items` (an _Indexed), in batches;
    `checkpoint`, the file of the network's weights, is named if its outputs are not finite."""
    loader = DataLoader(items, batch_size=batch_size, num_workers=num_workers, collate_fn=_same_size_groups)
    with torch.inference_mode(), progress(total=len(items), desc=desc) as bar:
        for groups in loader:
            for group in groups:
                logits = model(torch.stack([item[1] for item in group]).to(device)).float()
                _check_finite(logits, group, items.dataset, checkpoint)
                yield from zip(group, logits)
                bar.update(len(group))


def network_outputs(model, dataset, indices, batch_size, num_workers, device, checkpoint, desc="inference"):
    """Yields (index, logits float32 (C,H,W) on `device`, train ids uint8 (H,W)) per image, in batches."""
    for (i, _, gt_train), logits in _outputs(model, _Indexed(dataset, indices), batch_size, num_workers, device,
                                             desc, checkpoint):
        yield i, logits, gt_train


def network_at_epoch(cfg: RunConfig, epoch: int, num_classes: int, device):
    """The evaluated network of `epoch` (0: baseline), in eval mode on `device`."""
    return load_network(cfg.MODEL, num_classes, network_checkpoint(cfg, epoch), device=device)


def write_probs(cfg: RunConfig, epoch: int) -> int:
    """Writes the probs files of every image of cfg.VALSET still missing or computed from other inputs;
    returns how many."""
    remove_stale_temporaries(paths.probs_dir(cfg, epoch))
    dataset = build_dataset(cfg.VALSET, cfg)
    record, pending = provenance.pending_probs(cfg, epoch, dataset)
    logger.info("%s: %d of %d images to run through the network (%s)", cfg.VALSET, len(pending),
                len(dataset), paths.probs_dir(cfg, epoch))
    if not pending:
        return 0
    device = default_device()
    model = network_at_epoch(cfg, epoch, dataset.num_classes, device)
    items = _Indexed(dataset, pending, label_ids=True)
    for (i, _, gt_train, gt_label), logits in _outputs(model, items, cfg.inference_batch_size, cfg.num_workers,
                                                       device, "probs", paths.evaluated_checkpoint(cfg, epoch)):
        probs = torch.softmax(logits, dim=0).cpu().numpy()
        stored_logits = logits.cpu().numpy() if cfg.store_logits else None
        write_probs_file(paths.probs_file(cfg, epoch, i), probs, gt_train, gt_label, dataset.images[i],
                         stored_logits)
        record.done(paths.probs_file(cfg, epoch, i))
    return len(pending)
