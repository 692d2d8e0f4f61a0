"""Segment search of meta classification (docs/METHOD.md §5): MetaSeg metrics of every image.

For each probs file of an evaluation run it writes, atomically, the metrics and the
components map of the predicted OoD segments and of the ground-truth OoD segments
(`paths.metrics_file` / `paths.components_file`, .npz files: see src/segment_files.py).
Images whose four outputs exist and were computed from the same probs and threshold are skipped
(src/provenance.py), so an interrupted search resumes where it stopped; the workers of a parallel
search end with the process that started them, also when it is killed.
"""
import logging
import multiprocessing
import os
import re
from concurrent.futures import ProcessPoolExecutor, as_completed

from src import paths, provenance
from src.atomic import remove_stale_temporaries
from src.metaseg import compute_metrics_components, compute_metrics_mask
from src.probs_file import ProbsError, read_probs
from src.run_log import progress
from src.scores import entropy_mask
from src.segment_files import write_components, write_metrics
from src.workers import ending_with_this_process

logger = logging.getLogger(__name__)

SEARCH_DATASETS = ("probabilities", "gt_train_ids", "gt_label_ids")


def output_files(cfg, epoch, index):
    """Metrics and components of predicted segments, then of ground-truth segments."""
    return [paths.metrics_file(cfg, epoch, index), paths.components_file(cfg, epoch, index),
            paths.metrics_file(cfg, epoch, index, gt=True), paths.components_file(cfg, epoch, index, gt=True)]


_WRITERS = (write_metrics, write_components) * 2  # in the order of output_files


def segment_metrics(probs, gt_train, gt_label, threshold, ood_index):
    """[metrics, components, gt metrics, gt components] of one image, in the order of output_files."""
    ood_mask = entropy_mask(probs, threshold)
    metrics, components = compute_metrics_components(probs, gt_train, ood_mask, ood_index)
    gt_metrics, gt_components = compute_metrics_mask(probs, ood_mask, gt_train, gt_label, ood_index)
    return [metrics, components, gt_metrics, gt_components]


def search_image(cfg, epoch, index, ood_index):
    """Writes the four outputs of image `index`."""
    probs, gt_train, gt_label = read_probs(paths.probs_file(cfg, epoch, index), SEARCH_DATASETS)
    results = segment_metrics(probs, gt_train, gt_label, cfg.entropy_threshold, ood_index)
    for write, path, result in zip(_WRITERS, output_files(cfg, epoch, index), results):
        write(path, result)


def probs_indices(cfg, epoch):
    """Sorted image indices i of the probs<i>.hdf5 files of (cfg, epoch)."""
    folder = paths.probs_dir(cfg, epoch)
    names = os.listdir(folder) if os.path.isdir(folder) else []
    indices = sorted(int(m.group(1)) for m in map(re.compile(r"probs(\d+)\.hdf5").fullmatch, names) if m)
    if not indices:
        raise ProbsError(f"no probs files (probs<i>.hdf5) in {folder}: write them first with "
                         "meta_classification.py -prepare")
    return indices


def _searched(cfg, epoch, indices, ood_index):
    """Searches the images, in-process or over cfg.segment_workers processes; yields each image's index
    when it is done."""
    if cfg.segment_workers == 1 or len(indices) <= 1:
        for index in indices:
            search_image(cfg, epoch, index, ood_index)
            yield index
        return
    # forkserver: workers never inherit the threads (torch, BLAS) of the calling process
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(cfg.segment_workers, mp_context=context, **ending_with_this_process()) as pool:
        futures = {pool.submit(search_image, cfg, epoch, index, ood_index): index for index in indices}
        try:
            for future in as_completed(futures):
                future.result()
                yield futures[future]
        finally:  # after a failure, do not start the images still waiting
            for future in futures:
                future.cancel()


def run_segment_search(cfg, epoch, ood_index):
    """Segment metrics of every probs file of (cfg, epoch); returns (processed, skipped) image counts.

    ood_index: the OoD train id of the evaluation set. With cfg.segment_workers > 1 the
    workers are started by a fork server, so the calling script must guard its entry
    point with `if __name__ == "__main__":` (each worker imports the main module).
    """
    if cfg.segment_workers < 1:
        raise ValueError(f"segment_workers (--segment_workers) must be >= 1, got {cfg.segment_workers}")
    for path in output_files(cfg, epoch, 0):  # one in each folder the search writes
        remove_stale_temporaries(os.path.dirname(path))
    indices = probs_indices(cfg, epoch)
    record, pending = provenance.pending_segments(
        cfg, epoch, indices, lambda i: all(os.path.exists(f) for f in output_files(cfg, epoch, i)))
    logger.info("segment search: %d of %d images from %s still to do, %d worker(s), entropy threshold %s",
                len(pending), len(indices), paths.probs_dir(cfg, epoch), cfg.segment_workers,
                cfg.entropy_threshold)
    for index in progress(_searched(cfg, epoch, pending, ood_index), total=len(pending),
                          desc="segment search", unit="image"):
        record.done(paths.metrics_file(cfg, epoch, index))
    logger.info("segment search: outputs of %d images in %s", len(indices), paths.metaseg_dir(cfg))
    return len(pending), len(indices) - len(pending)
