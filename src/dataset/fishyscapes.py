"""Fishyscapes (evaluation): <root>/<split>/<name>.png labels (0 in-distribution, 1 OoD, 255 void)
with the <name>.jpg image beside each; splits "Static" and "LostAndFound"."""
import os

from src.dataset.base import SegmentationDataset, find_files, require_dir, require_file
from src.dataset.spec import DatasetSpec, Split
from src.settings import INFERENCE


class Fishyscapes(SegmentationDataset):
    # fs_eval is the reference's folder (of the Static split)
    spec = DatasetSpec("Fishyscapes", "eval", "FISHYSCAPES_ROOT", "<split>/<name>.png with <name>.jpg beside it",
                       {"Static": Split("fs_eval", 30), "LostAndFound": Split("fs_laf_eval", 100)}, INFERENCE,
                       split_setting="FISHYSCAPES_SPLIT")
    train_id_in = 0
    train_id_out = 1

    def __init__(self, root: str, split: str = "Static", transform=None):
        pattern = os.path.join(root, split, "<name>.png") + " with <name>.jpg beside it"
        require_dir(root, "Fishyscapes root", pattern)
        require_dir(os.path.join(root, split), f"Fishyscapes split folder '{split}'", pattern)
        targets = find_files(os.path.join(root, split, "*.png"))
        images = [require_file(t[:-4] + ".jpg", "image file", t) for t in targets]
        self.split = split
        super().__init__(images, targets, transform)
