"""The data sets, by the names config.py and the flags use."""
from src.dataset.base import DatasetError
from src.dataset.cityscapes import Cityscapes
from src.dataset.cityscapes_coco import CityscapesCOCO
from src.dataset.coco import COCO
from src.dataset.fishyscapes import Fishyscapes
from src.dataset.lost_and_found import LostAndFound
from src.dataset.transforms import evaluation_transform, training_transform

DATASETS = {
    "Cityscapes": Cityscapes,
    "COCO": COCO,
    "Cityscapes+COCO": CityscapesCOCO,
    "LostAndFound": LostAndFound,
    "Fishyscapes": Fishyscapes,
}


def build_dataset(name: str, cfg, split=None, transform=None):
    """The data set `name` with its root (and options) from the run configuration `cfg`;
    `split` None takes the data set's default (Fishyscapes: cfg.fishyscapes_split)."""
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}: expected one of {', '.join(DATASETS)}")
    return DATASETS[name].from_config(cfg, split=split, transform=transform)


__all__ = ["DATASETS", "DatasetError", "build_dataset", "training_transform", "evaluation_transform",
           "Cityscapes", "COCO", "CityscapesCOCO", "LostAndFound", "Fishyscapes"]
