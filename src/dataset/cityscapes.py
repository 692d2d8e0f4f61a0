"""Cityscapes (in-distribution): leftImg8bit/<split>/<city>/<name>_leftImg8bit.png with
gtFine/<split>/<city>/<name>_gtFine_labelTrainIds.png, or _labelIds.png mapped on the fly."""
from torchvision.datasets import Cityscapes as _TorchvisionCityscapes

from src.dataset.base import IMAGE_SUFFIX, VOID_ID, CityLayoutDataset, LabelValues, lookup_table
from src.dataset.spec import DatasetSpec, Split
from src.settings import SCRIPTS

# The official label table (cityscapesscripts' helpers.labels, as torchvision ships it);
# its train ids 255 and -1 (license plate, id -1: never in a label image) are void.
LABEL_TO_TRAIN_ID = lookup_table((c.id, c.train_id) for c in _TorchvisionCityscapes.classes
                                 if c.id >= 0 and c.train_id not in (VOID_ID, -1))
LABEL_IDS = LabelValues.of("Cityscapes label ids", (c.id for c in _TorchvisionCityscapes.classes if c.id >= 0))
TRAIN_IDS = LabelValues.of("Cityscapes train ids", (c.train_id for c in _TorchvisionCityscapes.classes
                                                  if c.train_id >= 0))


class Cityscapes(CityLayoutDataset):
    spec = DatasetSpec("Cityscapes", "source", "CITYSCAPES_ROOT",
                       f"leftImg8bit/<split>/<city>/<name>{IMAGE_SUFFIX}, gtFine/<split>/<city>/<name>_gtFine_labelIds.png",
                       {"train": Split(frames=2975), "val": Split(frames=500)}, SCRIPTS)
    label_folder = "gtFine"
    lut = LABEL_TO_TRAIN_ID
    label_values = LABEL_IDS
    train_id_values = TRAIN_IDS

    def __init__(self, root: str, split: str = "train", transform=None):
        super().__init__(root, split, transform)
