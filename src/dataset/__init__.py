"""The data sets, by the names config.py and the flags use: the one registry.

A new data set is a module with a class that has a `spec` (src/dataset/spec.py) and
`from_config(cfg, split, transform)`, plus its entry in REGISTERED below; its root setting,
-train/-val choice and output folder follow from the spec. Data sets read from one download
(LostAndFound, LostAndFound-testNoKnown) name the same root variable and share its setting.
"""
from src.dataset.base import DatasetError
from src.dataset.cityscapes import Cityscapes
from src.dataset.cityscapes_coco import CityscapesCOCO
from src.dataset.coco import COCO
from src.dataset.fishyscapes import Fishyscapes
from src.dataset.lost_and_found import LostAndFound
from src.dataset.lost_and_found_no_known import LostAndFoundNoKnown
from src.dataset.road_anomaly21 import RoadAnomaly21
from src.dataset.road_obstacle21 import RoadObstacle21
from src.dataset.spec import DatasetSpec, Split
from src.dataset.transforms import evaluation_transform, training_transform

REGISTERED = (Cityscapes, COCO, CityscapesCOCO, LostAndFound, Fishyscapes, RoadAnomaly21, RoadObstacle21,
              LostAndFoundNoKnown)
DATASETS = {cls.spec.name: cls for cls in REGISTERED}


def _named(role) -> list:
    return [name for name, cls in DATASETS.items() if cls.spec.role == role]


def training_sets() -> list:
    return _named("train")


def evaluation_sets() -> list:
    return _named("eval")


def build_dataset(name: str, cfg, split=None, transform=None):
    """The data set `name` with its root (and options) from the run configuration `cfg`;
    `split` None takes the run's split of it (spec.split_of)."""
    if name not in DATASETS:
        raise DatasetError(f"unknown data set {name!r}: expected one of {', '.join(DATASETS)}")
    spec = DATASETS[name].spec
    split = split or spec.split_of(cfg)
    if spec.root and getattr(cfg, spec.root_setting) is None:
        raise DatasetError(f"{name} root not set: set {spec.root} in config.py or pass --{spec.root_setting}")
    dataset = DATASETS[name].from_config(cfg, split=split, transform=transform)
    spec.check_frames(split, len(dataset), getattr(cfg, spec.root_setting) if spec.root else None)
    return dataset


def require_labels(name: str, cfg) -> None:
    """A DatasetError if the run's split of data set `name` withholds its labels (a SegmentMeIfYouCan test split)."""
    spec = DATASETS[name].spec
    if not spec.split_info(cfg).labelled:
        raise DatasetError(f"{name} {spec.split_of(cfg)}: its labels are withheld, there is nothing to evaluate "
                           f"or train a meta classifier on; use the {spec.labelled_split()} split, or write the "
                           f"benchmark's submission files with evaluation.py --submission")


__all__ = ["DATASETS", "DatasetError", "DatasetSpec", "Split", "build_dataset", "require_labels",
           "training_sets", "evaluation_sets", "training_transform", "evaluation_transform",
           "Cityscapes", "COCO", "CityscapesCOCO", "LostAndFound", "Fishyscapes", "RoadAnomaly21", "RoadObstacle21",
           "LostAndFoundNoKnown"]
