"""False-positive removal stage of meta classification (docs/METHOD.md §5), on the segment search's files.

Reads every image's metrics and components maps, runs the cross-validated meta classifier
and saves its scores, FP/FN counts and per-segment decisions as one JSON file
(`paths.meta_classifier_file`). An existing result is read back instead of recomputed when it was
computed from the same segment search outputs and cross-validation settings (src/provenance.py)
and is of the images the prepare stage wrote.
"""
import dataclasses
import logging
import os
from collections.abc import Sequence

import numpy as np

from src import paths, provenance
from src.atomic import read_json, remove_stale_temporaries, write_json
from src.errors import MetaOodError
from src.formatting import percent
from src.run_log import progress
from src.meta_classifier import MetaClassifierResult, meta_classifier_result
from src.segment_files import read_components, read_metrics
from src.image_outputs import image_indices, segment_files

logger = logging.getLogger(__name__)


RERUN = "meta_classification.py -removal (with the same settings)"
SAVED_KEYS = ("image_ids", *(f.name for f in dataclasses.fields(MetaClassifierResult)))


class _ComponentsMaps(Sequence):
    """The components maps at `files`, read on access: those of a whole data set would not fit."""

    def __init__(self, files):
        self.files = files

    def __len__(self):
        return len(self.files)

    def __getitem__(self, k):
        return read_components(self.files[k])


def segment_search_files(cfg, epoch, indices):
    """[metrics, components, gt metrics, gt components] files of each image of `indices`."""
    files = [segment_files(cfg, epoch, i) for i in indices]
    missing = [f for group in files for f in group if not os.path.exists(f)]
    if missing:
        raise MetaOodError(f"segment search outputs missing ({len(missing)} files, e.g. {missing[0]}): "
                           "run meta_classification.py -segment first")
    return files


def _saved_result(path, indices):
    """The result saved at `path` if it is of the images `indices` (None if of other images: a file
    without a record of its inputs may be)."""
    saved = read_json(path, "a meta classifier result", RERUN, SAVED_KEYS)
    if saved["image_ids"] != indices:
        logger.info("meta classifier result %s is of other images (%d) than the prepare stage's outputs now (%d): "
                    "computing it again", path, len(saved["image_ids"]), len(indices))
        return None
    logger.info("meta classifier result exists: %s", path)
    return saved


def remove_false_positives(cfg, epoch) -> dict:
    """The meta classifier's result for (cfg, epoch) as saved: MetaClassifierResult fields plus
    `image_ids`, the image index of each position of `image_index`."""
    path = paths.meta_classifier_file(cfg, epoch)
    remove_stale_temporaries(os.path.dirname(path))
    indices = image_indices(cfg, epoch)
    output = provenance.meta_classifier_output(cfg, epoch, indices)
    saved = _saved_result(path, indices) if output.reusable else None
    if saved is not None:
        return saved
    files = segment_search_files(cfg, epoch, indices)
    metrics = [read_metrics(group[0]) for group in progress(files, desc="segment metrics", unit="image")]
    components = _ComponentsMaps([group[1] for group in files])
    gt_components = _ComponentsMaps([group[3] for group in files])
    result = meta_classifier_result(metrics, components, gt_components, cv=cfg.cv, folds=cfg.folds,
                                    seed=cfg.seed, n_jobs=cfg.segment_workers, image_ids=indices)
    saved = {"image_ids": indices, **result.to_dict()}
    write_json(path, saved)
    output.done()
    logger.info("meta classifier: %d segments, AUROC %s, AUPRC %s, accuracy %s (%%); FP %d -> %d, "
                "FN %d -> %d (%d true positives removed); saved %s", result.n_segments,
                percent(result.auroc, "n/a"), percent(result.auprc, "n/a"), percent(result.accuracy, "n/a"),
                result.fp_before, result.fp_after, result.fn_before, result.fn_after,
                result.removed_true_positives, path)
    return saved


def removed_segments(saved: dict) -> dict:
    """Image index -> ids k (1-based, as in the components maps) of the removed segments."""
    result = MetaClassifierResult.from_dict({k: v for k, v in saved.items() if k != "image_ids"})
    return {image: set((np.flatnonzero(~kept) + 1).tolist())
            for image, kept in zip(saved["image_ids"], result.kept_per_image())}

