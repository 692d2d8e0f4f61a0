"""The probs file of one evaluated image (docs/METHOD.md §3): the one module that writes and reads it.

`probs<i>.hdf5` holds `probabilities` float32 (C,H,W), `gt_train_ids` uint8 (H,W),
`gt_label_ids` uint8 (H,W), `image_path` (string) and, on request, `logits` float32 (C,H,W).
Files of the reference implementation are read too: its `gt_train_ids` are int64, its
Fishyscapes `gt_label_ids` float64 zeros and its `image_path` a one-element bytes array;
they come back here in the types above.
"""
import logging

import h5py
import numpy as np

from src.atomic import atomic_path
from src.errors import MetaOodError
from src.miou import NUM_CLASSES

logger = logging.getLogger(__name__)

DATASETS = ("probabilities", "gt_train_ids", "gt_label_ids", "image_path")  # and logits on request
_LABEL_DATASETS = ("gt_train_ids", "gt_label_ids")
_MAP_DATASETS = ("probabilities", "logits")  # (NUM_CLASSES, H, W), finite
_WRITE_AGAIN = "delete the probs files of this run and write them again with meta_classification.py -prepare"


class ProbsError(MetaOodError):
    """Probs files missing, unreadable or incomplete: the prepare stage must (re)write them."""


def write_probs_file(path, probs, gt_train, gt_label, image_path, logits=None):
    # Through a Python file: a full disk then fails with an OSError (HDF5's own driver raises RuntimeError).
    with atomic_path(path) as tmp, open(tmp, "w+b") as out, h5py.File(out, "w") as f:
        f.create_dataset("probabilities", data=probs)
        f.create_dataset("gt_train_ids", data=gt_train)
        f.create_dataset("gt_label_ids", data=gt_label)
        f.create_dataset("image_path", data=image_path)
        if logits is not None:
            f.create_dataset("logits", data=logits)


def _as_labels(path, name, array):
    """uint8 label ids, from the uint8 we write or the reference's int64 / float64."""
    if array.dtype == np.uint8:
        return array
    labels = array.astype(np.uint8)
    if not np.array_equal(labels, array):
        raise ProbsError(f"{path}: {name} holds values that are not label ids 0..255")
    return labels


def _as_path(value) -> str:
    """The image path, from a string dataset (bytes) or the reference's one-element bytes array."""
    if isinstance(value, np.ndarray):
        value = value.reshape(-1)[0]
    return value.decode() if isinstance(value, bytes) else str(value)


def _check_shapes(path, f) -> None:
    """ProbsError unless the maps are (NUM_CLASSES, H, W) and the labels (H, W) of one H x W; from the
    files' metadata, whichever datasets are read (a file of another network fails before any work)."""
    present = [name for name in (*_LABEL_DATASETS, *_MAP_DATASETS) if name in f]
    if not present:
        return
    height_width = f[present[0]].shape[-2:]
    for name in present:
        expected = (NUM_CLASSES, *height_width) if name in _MAP_DATASETS else height_width
        if f[name].shape != expected:
            raise ProbsError(f"{path}: {name} of shape {f[name].shape}, expected {expected} ({NUM_CLASSES} "
                             f"classes on the {height_width} pixels of {present[0]}); {_WRITE_AGAIN}")


def _check_finite(path, name, array) -> None:
    if not np.isfinite(array).all():
        pixels = np.count_nonzero(~np.isfinite(array).all(axis=0))
        raise ProbsError(f"{path}: {name} hold NaN or infinite values on {pixels} of {array[0].size} pixels "
                         f"(a network with non-finite outputs); {_WRITE_AGAIN}")


def read_probs(path, names):
    """The datasets `names` of one probs file, in that order; reads nothing else. ProbsError for a file
    whose shapes do not fit together or whose probabilities or logits are not finite."""
    try:
        f = h5py.File(path, "r")
    except OSError as err:  # h5py's message does not name the file
        raise ProbsError(f"{path}: not a readable HDF5 probs file ({err}); delete it and run "
                         "meta_classification.py -prepare again") from err
    with f:
        missing = [name for name in names if name not in f]
        if missing:
            store_logits = " --store_logits" if "logits" in missing else ""
            raise ProbsError(f"{path}: missing dataset(s) {', '.join(missing)}; a probs file holds "
                             f"{', '.join(DATASETS)} (logits with --store_logits): delete the probs "
                             f"files of this run and write them again with meta_classification.py "
                             f"-prepare{store_logits}")
        _check_shapes(path, f)
        values = []
        for name in names:
            value = f[name][()]
            if name in _LABEL_DATASETS:
                value = _as_labels(path, name, value)
            elif name == "image_path":
                value = _as_path(value)
            else:
                _check_finite(path, name, value)
            values.append(value)
        return tuple(values)
