"""Segment search of meta classification (docs/METHOD.md §5): MetaSeg metrics of every image.

For each image of an evaluation run it writes, atomically, the metrics and the components map
of the predicted OoD segments and of the ground-truth OoD segments (`paths.metrics_file` /
`paths.components_file`, .npz files: see src/segment_files.py), computed from its probs file.
The compact prepare stage (the default) writes these files itself, while the softmax is in
memory: the search then finds them done. Images whose four outputs exist and were computed from
the same prepared image and threshold are skipped (src/provenance.py), so an interrupted search
resumes where it stopped; the workers of a parallel search end with the process that started
them, also when it is killed.
"""
import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed

from src import paths, provenance
from src.atomic import remove_stale_temporaries
from src.errors import MetaOodError
from src.image_outputs import image_indices, segment_files, segment_metrics, write_segment_files
from src.probs_file import read_probs
from src.run_log import progress
from src.scores import entropy_mask
from src.workers import ending_with_this_process

logger = logging.getLogger(__name__)

SEARCH_DATASETS = ("probabilities", "gt_train_ids", "gt_label_ids")


class SegmentSearchError(MetaOodError):
    """Images whose segment outputs are missing and cannot be computed without the network."""


def search_image(cfg, epoch, index, ood_index):
    """Writes the four segment files of image `index` from its probs file."""
    probs, gt_train, gt_label = read_probs(paths.probs_file(cfg, epoch, index), SEARCH_DATASETS)
    results = segment_metrics(probs, entropy_mask(probs, cfg.entropy_threshold), gt_train, gt_label, ood_index)
    write_segment_files(segment_files(cfg, epoch, index), results)


def searched(cfg, epoch, index) -> bool:
    """Whether the four segment files of image `index` exist (the prepare stage writes them too)."""
    return all(os.path.exists(f) for f in segment_files(cfg, epoch, index))


def _searchable(cfg, epoch, pending):
    """`pending`, after checking that each has a probs file to search."""
    lacking = [i for i in pending if not os.path.exists(paths.probs_file(cfg, epoch, i))]
    if lacking:
        raise SegmentSearchError(
            f"segment search: {len(lacking)} image(s) (e.g. image {lacking[0]}) have neither the segment files of "
            f"entropy threshold {cfg.entropy_threshold} nor a probs file to compute them from: the compact outputs "
            "of the prepare stage hold the segments of the threshold it ran with. Run meta_classification.py "
            "-prepare with this -threshold (it runs the network again for these images), or keep probs files "
            "with --store_probs")
    return pending


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
    for path in segment_files(cfg, epoch, 0):  # one in each folder the search writes
        remove_stale_temporaries(os.path.dirname(path))
    indices = image_indices(cfg, epoch)
    record, pending = provenance.pending_segments(cfg, epoch, indices, lambda i: searched(cfg, epoch, i))
    pending = _searchable(cfg, epoch, pending)
    logger.info("segment search: %d of %d images still to do, %d worker(s), entropy threshold %s%s", len(pending),
                len(indices), cfg.segment_workers, cfg.entropy_threshold,
                f", from their probs files in {paths.probs_dir(cfg, epoch)}" if pending else "")
    with record:
        for index in progress(_searched(cfg, epoch, pending, ood_index), total=len(pending),
                              desc="segment search", unit="image"):
            record.done(paths.metrics_file(cfg, epoch, index))
    logger.info("segment search: outputs of %d images in %s", len(indices), paths.metaseg_dir(cfg))
    return len(pending), len(indices) - len(pending)
