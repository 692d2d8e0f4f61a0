"""SegmentMeIfYouCan submission files of the evaluated network (docs/BENCHMARKS.md section 2).

One file per frame of the run's split of a SMIYC set, test splits included:
anomaly_p/<method>/<data set name>/<frame id>.hdf5 (paths.submission_file), HDF5 dataset `value`,
float16 (H, W) of the image, gzip level 9, higher = more anomalous. Two methods
(paths.submission_methods): the run's score (--score), and the meta-classified score, where the pixels
of the segments the meta classifier removes get the score's minimum (evaluation.removed_score).

Which segments are removed. On a split with labels (validation splits, LostAndFound-testNoKnown) the
cross-validated decisions of meta_classification.py (--cv): each segment judged by a classifier that
never saw it, the decisions behind the evaluation's "+ meta classification" row. A test split has no
labels, which meta classification needs twice: to train the classifier, and for the segments
themselves, from which MetaSeg leaves out the void pixels (on RoadObstacle21 everything off the road).
So on a test split the segments are searched without void, and the classifier is fitted on the
segments of the data set's labelled split (its validation split, through the same network and
threshold) searched the same way, without void, its labels only saying which segments are false
positives; it then decides on the test segments. No test label is used.

Each file is written atomically and a re-run skips the frames whose file exists. The compact
outputs of the prepare stage (the default) keep the segments without void of a --submission run
(src/image_outputs.py); under torchrun the processes share the network's work, and the first one
writes the files.
"""
import dataclasses
import functools
import logging
import os

import h5py
import numpy as np

from src import paths
from src.atomic import atomic_path
from src.dataset import DATASETS, build_dataset
from src.errors import MetaOodError
from src.evaluation import meta_classification, meta_classified_score, removed_score, run_score_map
from src.fp_removal import removed_segments
from src.distributed import current_process
from src.image_outputs import image_indices, void_free_files, void_free_segments
from src.inference import prepare_images
from src.meta_classifier import fit_meta_classifier
from src.probs_file import read_probs
from src.run_log import progress
from src.scores import entropy_mask
from src.segment_files import read_components, read_metrics

logger = logging.getLogger(__name__)

VALUE = "value"
COMPRESSION_LEVEL = 9


def write_submission_file(path, score) -> None:
    """The benchmark's file of one frame: `value`, float16, gzip level 9."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset(VALUE, data=np.asarray(score, np.float16), compression="gzip",
                         compression_opts=COMPRESSION_LEVEL)


def submission_name(cfg) -> str:
    """The benchmark's data set name of the run's split (AnomalyTrack-all, ...); MetaOodError if it has none."""
    spec = DATASETS[cfg.VALSET].spec
    name = spec.split_info(cfg).submission
    if name is None:
        sets = [n for n, cls in DATASETS.items() if any(s.submission for s in cls.spec.splits.values())]
        raise MetaOodError(f"--submission: {cfg.VALSET} {spec.split_of(cfg)} has no SegmentMeIfYouCan submission; "
                           f"the sets that have one: {', '.join(sets)}")
    return name


def segments_without_void(cfg, epoch, i) -> tuple:
    """(metrics, components map) of image i's segments at the entropy threshold, no pixel void; the
    labels, where there are any, only mark the false positives (iou0): those the prepare stage kept, or
    computed from the probs file."""
    metrics, components = void_free_files(cfg, epoch, i)
    if os.path.exists(metrics) and os.path.exists(components):
        return read_metrics(metrics), read_components(components)
    probs, gt_train = read_probs(paths.probs_file(cfg, epoch, i), ("probabilities", "gt_train_ids"))
    return void_free_segments(cfg, probs, entropy_mask(probs, cfg.entropy_threshold), gt_train)


def _labelled_split(cfg):
    """The run configuration of the labelled split of the run's data set, whose segments the meta
    classifier of a test split is fitted on."""
    spec = DATASETS[cfg.VALSET].spec
    labelled = spec.labelled_split()
    if labelled is None or spec.split_setting is None:
        raise MetaOodError(f"{cfg.VALSET} has no split with labels to fit the meta classifier on")
    return dataclasses.replace(cfg, **{spec.split_setting.lower(): labelled})


def _fitted_on_labelled_split(cfg, epoch):
    """The meta classifier fitted on the segments without void of the labelled split of the run's data set."""
    spec = DATASETS[cfg.VALSET].spec
    train = _labelled_split(cfg)
    labelled = spec.split_of(train)
    indices = image_indices(train, epoch)
    logger.info("meta classifier for %s %s: fitted on the segments of the %d images of the %s split", cfg.VALSET,
                spec.split_of(cfg), len(indices), labelled)
    return fit_meta_classifier([segments_without_void(train, epoch, i)[0]
                                for i in progress(indices, desc=f"segments of {labelled}", unit="image")])


def meta_score_maps(cfg, epoch):
    """A function: image index -> the meta-classified score map of that image (module doc)."""
    if DATASETS[cfg.VALSET].spec.split_info(cfg).labelled:
        removed = removed_segments(meta_classification(cfg, epoch))
        return lambda i: run_score_map(cfg, epoch, i, removed[i])
    classifier = _fitted_on_labelled_split(cfg, epoch)

    def score_map(i):
        metrics, components = segments_without_void(cfg, epoch, i)
        score = run_score_map(cfg, epoch, i)
        removed = np.flatnonzero(classifier.removed(metrics)) + 1
        return meta_classified_score(score, components, removed, removed_score(cfg, score))
    return score_map


def write_submission(cfg) -> dict:
    """Writes the missing submission files of the network cfg.val_epoch on the run's split; returns
    {method: files written}."""
    name, epoch = submission_name(cfg), cfg.val_epoch
    prepare_images(cfg, epoch)
    if not DATASETS[cfg.VALSET].spec.split_info(cfg).labelled:
        prepare_images(_labelled_split(cfg), epoch)
    if not current_process().is_main:
        return {}
    frame_ids = build_dataset(cfg.VALSET, cfg).frame_ids  # output i is frame i
    indices = image_indices(cfg, epoch)
    plain, meta = paths.submission_methods(cfg, epoch)
    written = {}
    for method in (plain, meta):
        pending = [i for i in indices if not os.path.exists(paths.submission_file(cfg, method, name, frame_ids[i]))]
        logger.info("submission %s/%s: %d of %d frames to write", method, name, len(pending), len(indices))
        written[method] = len(pending)
        if not pending:
            continue
        score_map = functools.partial(run_score_map, cfg, epoch) if method == plain else meta_score_maps(cfg, epoch)
        for i in progress(pending, desc=f"submission {method}", unit="frame"):
            write_submission_file(paths.submission_file(cfg, method, name, frame_ids[i]), score_map(i))
    logger.info("submission files in %s: archive anomaly_p and upload it", paths.submission_root(cfg))
    return written
