"""The OoD training set: every Cityscapes train image plus a random subset of the prepared COCO
train images, int(subsampling_factor x number of Cityscapes images) of them, re-drawn per epoch."""
import numpy as np
from torch.utils.data import Dataset

from src.dataset.base import VOID_ID, DatasetError
from src.dataset.cityscapes import Cityscapes
from src.dataset.coco import COCO
from src.dataset.spec import DatasetSpec
from src.dataset.transforms import apply_transform, evaluation_transform


class CityscapesCOCO(Dataset):
    """Labels: Cityscapes train ids; on COCO images 254 (train_id_out) on objects and 0 elsewhere.

    COCO background keeps label 0, which is also the Cityscapes train id of "road": it is
    trained as road with weight (1 - alpha). That is what the reference did and what produced
    the published numbers, so it is the default; `coco_background_void` makes it void instead.
    """
    spec = DatasetSpec("Cityscapes+COCO", "train", None, "the Cityscapes and COCO roots")
    num_classes = Cityscapes.num_classes
    void_id = VOID_ID
    train_id_in = COCO.train_id_in
    train_id_out = COCO.train_id_out
    mean = Cityscapes.mean
    std = Cityscapes.std

    def __init__(self, cs_root: str, coco_root: str, subsampling_factor: float = 0.1, transform=None,
                 seed: int = 0, coco_background_void: bool = False):
        self.cityscapes = Cityscapes(cs_root, "train")
        self.num_coco = int(subsampling_factor * len(self.cityscapes))
        # Only read when drawn from: the Cityscapes-only baseline (factor 0) needs no prepared COCO.
        self.coco = COCO(coco_root, "train") if self.num_coco > 0 else None
        if self.num_coco > self.num_prepared_coco():
            raise DatasetError(f"{self.num_coco} COCO images wanted per epoch (subsampling factor "
                               f"{subsampling_factor} x {len(self.cityscapes)} Cityscapes images), "
                               f"but {coco_root} has only {len(self.coco)} prepared ones")
        self.transform = transform or evaluation_transform(self.mean, self.std)
        self.seed = seed
        self.coco_background_void = coco_background_void
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Draws the epoch's COCO subset from (seed, epoch) alone. Call it before iterating:
        DataLoader workers copy the data set when an epoch's iterator is created."""
        rng = np.random.default_rng([self.seed, epoch])
        self.coco_indices = sorted(rng.choice(self.num_prepared_coco(), self.num_coco, replace=False).tolist())

    def num_prepared_coco(self) -> int:
        return len(self.coco) if self.coco is not None else 0

    @property
    def parts(self) -> list:
        """The data sets it draws from (what its identity is made of, src/provenance.py)."""
        return [self.cityscapes] + ([self.coco] if self.coco is not None else [])

    @property
    def images(self) -> list:
        return self.cityscapes.images + [self.coco.images[j] for j in self.coco_indices]

    def __len__(self) -> int:
        return len(self.cityscapes) + self.num_coco

    def raw_item(self, i: int) -> tuple:
        if i < len(self.cityscapes):
            return self.cityscapes.raw_item(i)
        image, label = self.coco.raw_item(self.coco_indices[i - len(self.cityscapes)])
        if self.coco_background_void:
            label = np.where(label == COCO.train_id_in, VOID_ID, label).astype(np.uint8)
        return image, label

    def __getitem__(self, i: int):
        return apply_transform(self.transform, *self.raw_item(i))

    @classmethod
    def from_config(cls, cfg, split=None, transform=None):
        return cls(cfg.cityscapes_root, cfg.coco_root, cfg.ood_subsampling_factor, transform,
                   seed=cfg.seed, coco_background_void=cfg.coco_background_void)
