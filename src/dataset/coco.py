"""COCO as the OoD proxy: images <root>/<split><year>/<id:012d>.jpg with the masks that
preparation/prepare_coco_segmentation.py writes, <root>/annotations/ood_seg_<split><year>/<id:012d>.png
(254 on annotated pixels, 0 elsewhere). The root ends in the year, e.g. .../COCO/2017."""
import os

from src.dataset.base import LabelValues, SegmentationDataset, find_files, require_dir, require_file
from src.dataset.spec import DatasetSpec, Split
from src.settings import TRAIN


def year(root: str) -> str:
    """The year the root ends in."""
    return os.path.basename(os.path.normpath(root))


def images_dir(root: str, split: str) -> str:
    return os.path.join(root, f"{split}{year(root)}")


def annotation_file(root: str, split: str) -> str:
    return os.path.join(root, "annotations", f"instances_{split}{year(root)}.json")


def masks_dir(root: str, split: str) -> str:
    return os.path.join(root, "annotations", f"ood_seg_{split}{year(root)}")


class COCO(SegmentationDataset):
    spec = DatasetSpec("COCO", "source", "COCO_ROOT",
                       "<year>/annotations/instances_<split><year>.json, <split><year>/<id:012d>.jpg (the root "
                       "ends in the year)", {"train": Split()}, (TRAIN,))
    train_id_in = 0
    train_id_out = 254
    label_values = LabelValues.of("COCO masks", (train_id_in, train_id_out))

    def __init__(self, root: str, split: str = "train", transform=None):
        root = os.path.normpath(root)
        masks = masks_dir(root, split)
        pattern = os.path.join(masks, "<id:012d>.png")
        require_dir(root, "COCO root (ending in the year)", pattern)
        require_dir(masks, "prepared COCO masks (run preparation/prepare_coco_segmentation.py)", pattern)
        targets = find_files(os.path.join(masks, "*.png"))
        images = [require_file(os.path.join(images_dir(root, split), os.path.basename(t)[:-4] + ".jpg"),
                               "image file", t) for t in targets]
        self.split = split
        # Sizes are checked when an item is loaded, not here: the prepared training split has
        # tens of thousands of files and the trainer only ever loads a subset of them per epoch.
        super().__init__(images, targets, transform, check_sizes=False)
