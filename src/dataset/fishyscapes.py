"""Fishyscapes (evaluation): the validation sets "Static" and "LostAndFound", each in <root>/<split>/,
labels 0 in-distribution, 1 OoD, 255 void, in one of two layouts (docs/BENCHMARKS.md section 1):

- as distributed, the archive unzipped into <root>/<split>/:
  Static (fs_val_v1/2/3.zip): <fs id:04d>_<Cityscapes val frame id>_labels.png with
  <fs id:04d>_<frame id>_rgb.npz beside it; the image is the frame's Cityscapes val image plus
  the overlay's `rgb` array, clipped to 0..255.
  LostAndFound (fishyscapes_lostandfound.zip): <fs id:04d>_<LostAndFound frame id>_labels.png; the
  image is the frame's LostAndFound leftImg8bit image, of the train or the test split.
- pre-converted, as the reference expected: <name>.png labels with the <name>.jpg image beside each.
"""
import glob
import logging
import os
import zipfile

import numpy as np

from src.dataset.base import (IMAGE_SUFFIX, VOID_ID, DatasetError, LabelValues, SegmentationDataset, require_dir,
                              require_file)
from src.dataset.spec import DatasetSpec, Split
from src.settings import INFERENCE

logger = logging.getLogger(__name__)

LABELS_SUFFIX = "_labels.png"
OVERLAY_SUFFIX = "_rgb.npz"
FS_ID_PREFIX = "[0-9]" * 4 + "_"
OFFICIAL_PATTERNS = {
    "Static": "<fs id:04d>_<Cityscapes val frame id>_labels.png with <fs id:04d>_<frame id>_rgb.npz beside it",
    "LostAndFound": "<fs id:04d>_<LostAndFound frame id>_labels.png",
}
PRECONVERTED_PATTERN = "<name>.png with <name>.jpg beside it"
LOSTANDFOUND_SPLITS = ("train", "test")


def expected_files(folder: str, split: str) -> str:
    """Both layouts' file patterns in a split folder, for messages."""
    return (f"{os.path.join(folder, OFFICIAL_PATTERNS[split])} as distributed, or pre-converted "
            f"{os.path.join(folder, PRECONVERTED_PATTERN)}")


def frame_id(label_path: str) -> str:
    """The Cityscapes or LostAndFound frame id in an official label file's name."""
    return os.path.basename(label_path)[len("0000_"):-len(LABELS_SUFFIX)]


def frame_image(root: str, split: str, frame: str) -> str:
    """leftImg8bit/<split>/<city>/<frame>_leftImg8bit.png, the image path of a frame <city>_<seq>_<frame>."""
    return os.path.join(root, "leftImg8bit", split, frame.rsplit("_", 2)[0], frame + IMAGE_SUFFIX)


def lostandfound_image(root: str, label_path: str) -> str:
    """The image of a Fishyscapes LostAndFound label file's frame: in the LostAndFound train or test split."""
    candidates = [frame_image(root, split, frame_id(label_path)) for split in LOSTANDFOUND_SPLITS]
    for path in candidates:
        if os.path.isfile(path):
            return path
    raise DatasetError(f"LostAndFound image missing for {label_path}: expected {' or '.join(candidates)}")


def image_root(root, option: str, split: str) -> str:
    """`root`, the folder of the images given as `option`; it must be given for the layout as distributed."""
    if root is None:
        raise DatasetError(f"Fishyscapes {split} as distributed has no images of its own: give {option}")
    return root


def preconverted_frames(folder: str) -> tuple:
    """(images, labels, overlays) of the pre-converted layout; no overlays."""
    labels = sorted(glob.glob(os.path.join(folder, "*.png")))
    return [require_file(t[:-4] + ".jpg", "image file", t) for t in labels], labels, [None] * len(labels)


def static_frames(labels: list, cityscapes_root: str) -> tuple:
    """(Cityscapes val images, labels, overlays) of fs_val_v*.zip's layout."""
    images = [require_file(frame_image(cityscapes_root, "val", frame_id(t)), "Cityscapes val image", t) for t in labels]
    overlays = [require_file(t[:-len(LABELS_SUFFIX)] + OVERLAY_SUFFIX, "overlay file", t) for t in labels]
    return images, labels, overlays


def lostandfound_frames(labels: list, lostandfound_root: str) -> tuple:
    """(LostAndFound images, labels, overlays) of fishyscapes_lostandfound.zip's layout; no overlays."""
    return [lostandfound_image(lostandfound_root, t) for t in labels], labels, [None] * len(labels)


def overlaid(image: np.ndarray, overlay_path: str) -> np.ndarray:
    """uint8 clip(image + the overlay's `rgb`, 0, 255), as the Fishyscapes team's loader builds it."""
    try:
        with np.load(overlay_path, allow_pickle=False) as archive:
            rgb = archive["rgb"]
    except KeyError:
        raise DatasetError(f"overlay {overlay_path} has no array 'rgb'") from None
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise DatasetError(f"cannot read overlay {overlay_path}: {err}") from err
    if rgb.shape != image.shape:
        raise DatasetError(f"overlay {overlay_path} has shape {rgb.shape}, its image {image.shape}")
    return np.clip(image.astype(np.int64) + rgb, 0, 255).astype(np.uint8)


def frames(folder: str, split: str, cityscapes_root, lostandfound_root) -> tuple:
    """(layout, images, labels, overlays) of the layout found in a split folder."""
    if any(os.path.isfile(p[:-4] + ".jpg") for p in glob.glob(os.path.join(folder, "*.png"))):
        return ("pre-converted", *preconverted_frames(folder))
    labels = sorted(glob.glob(os.path.join(folder, FS_ID_PREFIX + "*" + LABELS_SUFFIX)))
    if not labels:
        raise DatasetError(f"no Fishyscapes {split} frames in {folder}: expected {expected_files(folder, split)}")
    if split == "Static":
        return ("as distributed, images from the Cityscapes val split plus overlays",
                *static_frames(labels, image_root(cityscapes_root, "cityscapes_root", split)))
    return ("as distributed, images from the LostAndFound train and test splits",
            *lostandfound_frames(labels, image_root(lostandfound_root, "lostandfound_root", split)))


class Fishyscapes(SegmentationDataset):
    """`cityscapes_root` and `lostandfound_root` hold the images of the layout as distributed."""
    # fs_eval is the reference's folder (of the Static split); frames: the benchmark's validation sets.
    # The LostAndFound split is SegmentMeIfYouCan's FishyLAF (anomaly track; public labels, no submission).
    spec = DatasetSpec("Fishyscapes", "eval", "FISHYSCAPES_ROOT",
                       f"<split>/{OFFICIAL_PATTERNS['Static']} (Static) or <split>/{OFFICIAL_PATTERNS['LostAndFound']} "
                       f"(LostAndFound), as distributed; or <split>/{PRECONVERTED_PATTERN}",
                       {"Static": Split("fs_eval", 30), "LostAndFound": Split("fs_laf_eval", 100, "anomaly")}, INFERENCE,
                       split_setting="FISHYSCAPES_SPLIT")
    train_id_in = 0
    train_id_out = 1
    label_values = LabelValues.of("Fishyscapes labels", (train_id_in, train_id_out, VOID_ID))

    def __init__(self, root: str, split: str = "Static", transform=None, cityscapes_root=None,
                 lostandfound_root=None):
        if split not in self.spec.splits:
            raise DatasetError(f"unknown Fishyscapes split {split!r}: expected one of {', '.join(self.spec.splits)}")
        folder = os.path.join(root, split)
        require_dir(root, "Fishyscapes root", expected_files(folder, split))
        require_dir(folder, f"Fishyscapes split folder '{split}'", expected_files(folder, split))
        layout, images, targets, self.overlays = frames(folder, split, cityscapes_root, lostandfound_root)
        logger.info("Fishyscapes %s: %d frames in %s, layout %s", split, len(targets), folder, layout)
        self.split = split
        super().__init__(images, targets, transform)

    def read_image(self, i: int) -> np.ndarray:
        """The image file, plus the overlay for Static as distributed."""
        image = super().read_image(i)
        return image if self.overlays[i] is None else overlaid(image, self.overlays[i])

    @classmethod
    def from_config(cls, cfg, split=None, transform=None):
        return cls(cfg.fishyscapes_root, split, transform,
                   cityscapes_root=cfg.cityscapes_root, lostandfound_root=cfg.lostandfound_root)
