"""What the file-based data sets share: finding image/label pairs, failing early with a clear
message when a folder does not have the expected layout, loading, and the joint transform."""
import glob
import os
from typing import NamedTuple

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from src.errors import MetaOodError
from src.dataset.transforms import IMAGENET_MEAN, IMAGENET_STD, apply_transform, evaluation_transform

VOID_ID = 255
IMAGE_SUFFIX = "_leftImg8bit.png"
TRAIN_IDS_SUFFIX = "_labelTrainIds.png"
LABEL_IDS_SUFFIX = "_labelIds.png"


class DatasetError(MetaOodError, ValueError):
    """A data set folder without the expected layout, or a file that cannot be used."""


def require_dir(path: str, what: str, pattern: str) -> None:
    if not os.path.isdir(path):
        raise DatasetError(f"{what} not found: {path} (expected files {pattern})")


def find_files(pattern: str) -> list:
    files = sorted(glob.glob(pattern))
    if not files:
        raise DatasetError(f"no images found: nothing matches {pattern}")
    return files


def require_file(path: str, what: str, owner: str) -> str:
    if not os.path.isfile(path):
        raise DatasetError(f"{what} missing for {owner}: {path}")
    return path


def image_size(path: str) -> tuple:
    """(width, height) from the file header only (PIL opens lazily)."""
    try:
        with Image.open(path) as im:
            return im.size
    except (OSError, SyntaxError) as err:
        raise DatasetError(f"cannot read image {path}: {err}") from err


def require_same_size(image_path: str, image: tuple, label_path: str, label: tuple) -> None:
    """`image` and `label` are (width, height) sizes."""
    if image != label:
        raise DatasetError(f"image and label sizes differ: {image_path} is {image[0]}x{image[1]}, "
                           f"{label_path} is {label[0]}x{label[1]}")


def read_rgb(path: str) -> np.ndarray:
    """uint8 (H,W,3); grey or palette images are converted to RGB."""
    try:
        with Image.open(path) as im:
            return np.array(im.convert("RGB"))
    except (OSError, SyntaxError) as err:
        raise DatasetError(f"cannot read image {path}: {err}") from err


class LabelValues(NamedTuple):
    """The values one kind of label file holds, and what they are (for messages)."""
    what: str              # e.g. "Cityscapes label ids"
    allowed: np.ndarray    # bool (256,): allowed[v] for each value v

    @classmethod
    def of(cls, what: str, values) -> "LabelValues":
        allowed = np.zeros(256, dtype=bool)
        allowed[list(values)] = True
        return cls(what, allowed)


def _runs(values) -> str:
    """Sorted integers as "0..18, 255": runs of three or more as first..last."""
    runs = []
    for v in values:
        if runs and v == runs[-1][1] + 1:
            runs[-1][1] = v
        else:
            runs.append([v, v])
    return ", ".join(f"{a}..{b}" if b - a >= 2 else ", ".join(map(str, range(a, b + 1))) for a, b in runs)


def _check_values(path: str, label: np.ndarray, expected: LabelValues) -> None:
    """DatasetError if `label` holds a value `expected` does not allow (a bincount: fast on uint8)."""
    unexpected = np.flatnonzero((np.bincount(label.ravel(), minlength=256) > 0) & ~expected.allowed)
    if unexpected.size:
        raise DatasetError(f"label {path} holds unexpected values {_runs(unexpected.tolist())}: expected "
                           f"{expected.what} {_runs(np.flatnonzero(expected.allowed).tolist())}")


def read_label(path: str, expected: LabelValues) -> np.ndarray:
    """uint8 (H,W) label image, of the values `expected` allows."""
    try:
        with Image.open(path) as im:
            label = np.array(im)
    except (OSError, SyntaxError) as err:
        raise DatasetError(f"cannot read label {path}: {err}") from err
    if label.ndim != 2 or (label.dtype != np.uint8 and (label.min(initial=0) < 0 or label.max(initial=0) > 255)):
        raise DatasetError(f"label {path} is not a single-channel image of values 0..255")
    label = label.astype(np.uint8, copy=False)
    _check_values(path, label, expected)
    return label


def lookup_table(pairs) -> np.ndarray:
    """A 256-entry id -> train id table from (id, train id) pairs; unlisted ids are void."""
    lut = np.full(256, VOID_ID, dtype=np.uint8)
    for label_id, train_id in pairs:
        lut[label_id] = train_id
    return lut


class SegmentationDataset(Dataset):
    """Image files with label files of train ids; item i = (normalized float image, int64 train ids)."""
    num_classes = 19
    void_id = VOID_ID
    train_id_in = 0
    train_id_out = 254
    mean = IMAGENET_MEAN
    std = IMAGENET_STD

    @property
    def label_values(self) -> LabelValues:
        """The values of the label files (targets): train ids in, out and void, unless a data set
        declares others (a class attribute)."""
        return LabelValues.of(f"{type(self).__name__} train ids", (self.train_id_in, self.train_id_out, self.void_id))

    def __init__(self, images: list, targets: list, transform=None, check_sizes: bool = True):
        self.images = images
        self.targets = targets
        self.transform = transform or evaluation_transform(self.mean, self.std)
        if check_sizes:
            for image, target in zip(images, targets):
                require_same_size(image, image_size(image), target, image_size(target))

    @classmethod
    def from_config(cls, cfg, split, transform=None):
        """The data set at the run's root of it (cls.spec.root)."""
        return cls(getattr(cfg, cls.spec.root_setting), split, transform)

    def __len__(self) -> int:
        return len(self.images)

    def train_ids(self, i: int) -> np.ndarray:
        return read_label(self.targets[i], self.label_values)

    def label_ids(self, i: int) -> np.ndarray:
        """uint8 (H,W) label ids; zeros for data sets that have none."""
        width, height = image_size(self.images[i])
        return np.zeros((height, width), dtype=np.uint8)

    def read_image(self, i: int) -> np.ndarray:
        """uint8 (H,W,3) image of item i; a data set that composes its images overrides this."""
        return read_rgb(self.images[i])

    def raw_item(self, i: int) -> tuple:
        """uint8 image (H,W,3) and uint8 train ids (H,W), before any transform."""
        image, label = self.read_image(i), self.train_ids(i)
        require_same_size(self.images[i], image.shape[1::-1], self.targets[i], label.shape[::-1])
        return image, label

    def __getitem__(self, i: int):
        return apply_transform(self.transform, *self.raw_item(i))


class CityLayoutDataset(SegmentationDataset):
    """The Cityscapes folder layout: leftImg8bit/<split>/<city>/<name>_leftImg8bit.png with
    <label_folder>/<split>/<city>/<name>_<label_folder>_labelIds.png, mapped to train ids by
    `lut`, or a pre-generated `..._labelTrainIds.png` beside it, used as it is when present (unless
    `train_ids_files` is False: a data set whose train ids are not those of such files)."""
    label_folder: str
    name_pattern = "<name>"
    lut: np.ndarray
    train_ids_files = True
    label_values: LabelValues     # of the _labelIds.png files: the ids of `lut`'s table
    train_id_values: LabelValues  # of the _labelTrainIds.png files

    def __init__(self, root: str, split: str, transform=None):
        what = type(self).__name__
        pattern = os.path.join(root, "leftImg8bit", split, "<city>", self.name_pattern + IMAGE_SUFFIX)
        require_dir(root, f"{what} root", pattern)
        require_dir(os.path.join(root, "leftImg8bit", split), f"{what} split folder '{split}'", pattern)
        images = find_files(os.path.join(root, "leftImg8bit", split, "*", "*" + IMAGE_SUFFIX))
        targets, self.label_id_files = [], []
        for image in images:
            city, name = os.path.basename(os.path.dirname(image)), os.path.basename(image)[:-len(IMAGE_SUFFIX)]
            base = os.path.join(root, self.label_folder, split, city, f"{name}_{self.label_folder}")
            train_ids, label_ids = base + TRAIN_IDS_SUFFIX, base + LABEL_IDS_SUFFIX
            use_train_ids = self.train_ids_files and os.path.isfile(train_ids)
            if not (use_train_ids or os.path.isfile(label_ids)):
                alternative = f" (or {os.path.basename(train_ids)})" if self.train_ids_files else ""
                raise DatasetError(f"label file missing for {image}: expected {label_ids}{alternative}")
            targets.append(train_ids if use_train_ids else label_ids)
            self.label_id_files.append(label_ids if os.path.isfile(label_ids) else None)
        self.split = split
        super().__init__(images, targets, transform)

    def train_ids(self, i: int) -> np.ndarray:
        if self.targets[i].endswith(TRAIN_IDS_SUFFIX):
            return read_label(self.targets[i], self.train_id_values)
        return self.lut[read_label(self.targets[i], self.label_values)]

    def label_ids(self, i: int) -> np.ndarray:
        """The `_labelIds.png` image; zeros when only train ids were provided."""
        path = self.label_id_files[i]
        return read_label(path, self.label_values) if path else super().label_ids(i)
