"""Fishyscapes (evaluation): <root>/<split>/<name>.png labels (0 in-distribution, 1 OoD, 255 void)
with the <name>.jpg image beside each; splits "Static" and "LostAndFound"."""
import os

from src.dataset.base import SegmentationDataset, find_files, require_dir, require_file

SPLITS = ("Static", "LostAndFound")


class Fishyscapes(SegmentationDataset):
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

    @classmethod
    def from_config(cls, cfg, split=None, transform=None):
        return cls(cfg.fishyscapes_root, split or cfg.fishyscapes_split, transform)
