"""Softmax outputs of a network on an evaluation set, one HDF5 file per image (METHOD.md §3).

`probs<i>.hdf5` holds `probabilities` float32 (C,H,W), `gt_train_ids` uint8 (H,W),
`gt_label_ids` uint8 (H,W), `image_path` (string) and, on request, `logits` float32 (C,H,W).
Files are written atomically, so a re-run only computes the images still missing.
"""
import logging
import os

import h5py
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from src import paths
from src.atomic import atomic_path
from src.errors import MetaOodError
from src.dataset import build_evaluation_set
from src.model import load_network
from src.settings import RunConfig, init_ckpt_path

logger = logging.getLogger(__name__)


class InferenceError(MetaOodError):
    pass


def network_checkpoint(cfg: RunConfig, epoch: int) -> str:
    """Weights evaluated at `epoch`: the init checkpoint for 0 (baseline), else the OoD-trained one."""
    path = init_ckpt_path(cfg) if epoch == 0 else paths.checkpoint_path(cfg, epoch)
    if not os.path.exists(path):
        what = "baseline (--init_ckpt)" if epoch == 0 else f"OoD-trained epoch {epoch} (ood_training.py)"
        raise InferenceError(f"checkpoint of the {what} not found: {path}")
    return path


class _Indexed(Dataset):
    """Items of `dataset` at `indices`, each with its index and label ids."""

    def __init__(self, dataset, indices):
        self.dataset, self.indices = dataset, indices

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, k):
        i = self.indices[k]
        image, target = self.dataset[i]
        return i, image, target.numpy().astype(np.uint8), self.dataset.label_ids(i)


def _same_size_groups(batch):
    """Splits a batch into runs of equally sized images (sets may mix sizes)."""
    groups = {}
    for item in batch:
        groups.setdefault(tuple(item[1].shape), []).append(item)
    return list(groups.values())


def write_probs_file(path, probs, gt_train, gt_label, image_path, logits=None):
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("probabilities", data=probs)
        f.create_dataset("gt_train_ids", data=gt_train)
        f.create_dataset("gt_label_ids", data=gt_label)
        f.create_dataset("image_path", data=image_path)
        if logits is not None:
            f.create_dataset("logits", data=logits)


def write_probs(cfg: RunConfig, epoch: int) -> int:
    """Writes the probs files of every image of cfg.VALSET still missing; returns how many."""
    dataset = build_evaluation_set(cfg)
    pending = [i for i in range(len(dataset)) if not os.path.exists(paths.probs_file(cfg, epoch, i))]
    logger.info("%s: %d of %d images to run through the network (%s)", cfg.VALSET, len(pending),
                len(dataset), paths.probs_dir(cfg, epoch))
    if not pending:
        return 0
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = load_network(cfg.MODEL, dataset.num_classes, network_checkpoint(cfg, epoch), device=device)
    loader = DataLoader(_Indexed(dataset, pending), batch_size=cfg.batch_size,
                        num_workers=cfg.num_workers, collate_fn=_same_size_groups)
    with torch.inference_mode(), tqdm(total=len(pending), desc="probs", dynamic_ncols=True) as bar:
        for groups in loader:
            for group in groups:
                logits = model(torch.stack([item[1] for item in group]).to(device)).float()
                probs = torch.softmax(logits, dim=1).cpu().numpy()
                logits = logits.cpu().numpy() if cfg.store_logits else [None] * len(group)
                for (i, _, gt_train, gt_label), p, z in zip(group, probs, logits):
                    write_probs_file(paths.probs_file(cfg, epoch, i), p, gt_train, gt_label,
                                     dataset.images[i], z)
                bar.update(len(group))
    return len(pending)
