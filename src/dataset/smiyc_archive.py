"""The SegmentMeIfYouCan track archives as they unpack (docs/BENCHMARKS.md section 2):
<root>/<archive>/images/<fid><image suffix> with <root>/<archive>/labels_masks/<fid>_labels_semantic.png,
labels 0 in-distribution (not anomaly, or road), 1 anomaly or obstacle, 255 void. Which frames form
a split is the data set's rule (`in_split`). The labels of a split that withholds them (a test
split, Split.labelled False) are not read: every pixel is void, and the frames still load for
inference and submissions. Frames may be of any size."""
import logging
import os

import numpy as np

from src.dataset.base import (VOID_ID, DatasetError, LabelValues, SegmentationDataset, find_files, image_size,
                              read_label, require_dir, require_file)

logger = logging.getLogger(__name__)

LABELS_FOLDER = "labels_masks"
LABELS_SUFFIX = "_labels_semantic.png"


def frame_id(image_path: str) -> str:
    """The benchmark's frame id: the image file's name without its suffix."""
    return os.path.splitext(os.path.basename(image_path))[0]


class TrackArchive(SegmentationDataset):
    """A SegmentMeIfYouCan track; a subclass names the archive folder, the image suffix and the split rule."""
    archive: str  # the folder the archive unpacks to, e.g. dataset_AnomalyTrack
    image_suffix: str  # .jpg, .webp
    train_id_in = 0
    train_id_out = 1
    label_values = LabelValues.of("SegmentMeIfYouCan labels", (train_id_in, train_id_out, VOID_ID))

    @staticmethod
    def in_split(fid: str, split: str) -> bool:
        raise NotImplementedError

    def __init__(self, root: str, split=None, transform=None):
        name, split = self.spec.name, split or self.spec.default_split
        if split not in self.spec.splits:
            raise DatasetError(f"unknown {name} split {split!r}: expected one of {', '.join(self.spec.splits)}")
        folder = os.path.join(root, self.archive)
        pattern = (f"{os.path.join(folder, 'images', '<fid>' + self.image_suffix)} with "
                   f"{os.path.join(folder, LABELS_FOLDER, '<fid>' + LABELS_SUFFIX)}")
        require_dir(root, f"{name} root", pattern)
        require_dir(os.path.join(folder, "images"), f"{name} images folder", pattern)
        images = [p for p in find_files(os.path.join(folder, "images", "*" + self.image_suffix))
                  if self.in_split(frame_id(p), split)]
        if not images:
            raise DatasetError(f"no {name} {split} frames in {os.path.join(folder, 'images')} (expected files {pattern})")
        labelled = self.spec.splits[split].labelled
        targets = [require_file(os.path.join(folder, LABELS_FOLDER, frame_id(p) + LABELS_SUFFIX), "label file", p)
                   if labelled else None for p in images]
        self.split = split
        self.frame_ids = [frame_id(p) for p in images]
        logger.info("%s %s: %d frames in %s, %s", name, split, len(images), folder,
                    "labels read" if labelled else "labels withheld (all void)")
        super().__init__(images, targets, transform, check_sizes=labelled)

    def train_ids(self, i: int) -> np.ndarray:
        """The label file's values; all void on a split without labels."""
        if self.targets[i] is None:
            width, height = image_size(self.images[i])
            return np.full((height, width), VOID_ID, np.uint8)
        return read_label(self.targets[i], self.label_values)
