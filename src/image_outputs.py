"""What the stages after the network keep of each evaluated image, and where they find it again.

While an image's softmax is in memory the prepare stage writes either its probs file
(--store_probs: the whole float32 softmax, src/probs_file.py) or, by default, the compact outputs
that the later stages read (src/compact_file.py, src/segment_files.py), about 4.3 MB instead of 160:
    segment search     the four segment files at the run's threshold (-segment then finds them done)
    pixel evaluation   the image's share of the histograms of the run's score and bins
    panels             the float16 map of the run's score
    all of them        the labels file: ground truth and image path, written last, so an image is
                       in the run's set once all its outputs exist
Every number is that of the probs path: the same functions on the same float32 softmax (and
logits). A compact image lacks what other settings need (another -threshold, --score or --bins):
the prepare stage runs the network again for it, and says so. The readers take an image's compact
file where it exists, else its probs file.
"""
import os
import re
from functools import cached_property

import numpy as np
import torch

from src import paths
from src.compact_file import (read_image_histograms, read_labels, read_score_map, write_image_histograms,
                              write_labels, write_score_map)
from src.dataset import DATASETS
from src.metaseg import compute_metrics_components, compute_metrics_mask
from src.pixel_metrics import PAPER_BINS, ScoreHistogram, pixel_scores
from src.probs_file import ProbsError, read_probs, write_probs_file
from src.scores import SCORE_RANGES, SCORES, normalized_entropy, score_map, softmax, threshold_mask
from src.segment_files import write_components, write_metrics

_SEGMENT_WRITERS = (write_metrics, write_components) * 2  # in the order of segment_files
# The probs-file dataset behind each input of src.scores.SCORES.
SCORE_DATASETS = {"probs": "probabilities", "logits": "logits"}


# ---------------------------------------------------------------- segments

def segment_files(cfg, epoch, index):
    """Metrics and components of predicted segments, then of ground-truth segments."""
    return [paths.metrics_file(cfg, epoch, index), paths.components_file(cfg, epoch, index),
            paths.metrics_file(cfg, epoch, index, gt=True), paths.components_file(cfg, epoch, index, gt=True)]


def segment_metrics(probs, ood_mask, gt_train, gt_label, ood_index):
    """[metrics, components, gt metrics, gt components] of one image, in the order of segment_files."""
    metrics, components = compute_metrics_components(probs, gt_train, ood_mask, ood_index)
    gt_metrics, gt_components = compute_metrics_mask(probs, ood_mask, gt_train, gt_label, ood_index)
    return [metrics, components, gt_metrics, gt_components]


def write_segment_files(files, results):
    for write, path, result in zip(_SEGMENT_WRITERS, files, results):
        write(path, result)


# ---------------------------------------------------------------- pixel scores

def run_histograms(cfg) -> dict:
    """The empty score histograms of the run, {protocol: ScoreHistogram}, of the protocols with their
    own grid: the paper protocol is defined on 100 bins of a bounded score, an unbounded one shares
    the exact protocol's grid."""
    value_range = SCORE_RANGES[cfg.score]
    exact = {"exact": ScoreHistogram(cfg.bins, value_range)}
    return {"paper": ScoreHistogram(PAPER_BINS, value_range), **exact} if value_range else exact


def histogram_shares(cfg, score, gt_train) -> dict:
    """{protocol: pixel_metrics.ImageHistogram} of one image's score map; the paper protocol's from the
    exact protocol's bins where its grid is a coarsening of theirs (ScoreHistogram.share_from)."""
    dataset = DATASETS[cfg.VALSET]
    values = pixel_scores(score, gt_train, dataset.train_id_in, dataset.train_id_out)
    histograms = run_histograms(cfg)
    exact = histograms["exact"].image_histogram(*values)
    if "paper" not in histograms:
        return {"exact": exact}
    paper = histograms["paper"]
    return {"paper": paper.share_from(histograms["exact"], exact, score.dtype) or paper.image_histogram(*values),
            "exact": exact}


def probs_score(cfg, path, *names):
    """(score map, *datasets `names`) of one probs file; of probabilities and logits only the one
    the score needs is read (each is C times the size of a map)."""
    source = SCORES[cfg.score][1]
    array, *rest = read_probs(path, (SCORE_DATASETS[source], *names))
    return (score_map(cfg.score, **{source: array}), *rest)


# ---------------------------------------------------------------- writing

def probabilities(logits) -> np.ndarray:
    """float32 numpy softmax (C, H, W) of float32 logits (C, H, W), a tensor: on a GPU torch's, on the
    CPU scores.softmax (4x faster there). Both paths of an image start from the same one."""
    if logits.device.type == "cpu":
        return softmax(logits.numpy())
    return torch.softmax(logits, 0).cpu().numpy()


class _InMemory:
    """One image after the network, each quantity computed once, when an output first needs it."""

    def __init__(self, cfg, logits, gt_train, gt_label, image_path):
        self.cfg, self.logits, self.image_path = cfg, logits, image_path
        self.gt_train, self.gt_label = gt_train, gt_label

    @cached_property
    def probs(self):
        return probabilities(self.logits)

    @cached_property
    def entropy(self):
        return normalized_entropy(self.probs)

    @cached_property
    def score(self):
        if self.cfg.score == "entropy":
            return self.entropy
        source = SCORES[self.cfg.score][1]
        return score_map(self.cfg.score, **{source: self.probs if source == "probs" else self.logits.cpu().numpy()})


def _write_segments(files, image):
    mask = threshold_mask(image.entropy, image.cfg.entropy_threshold)
    write_segment_files(files, segment_metrics(image.probs, mask, image.gt_train, image.gt_label,
                                               DATASETS[image.cfg.VALSET].train_id_out))


def _write_score_map(files, image):
    write_score_map(files[0], image.score)


def _write_histograms(files, image):
    write_image_histograms(files[0], histogram_shares(image.cfg, image.score, image.gt_train))


def _write_labels(files, image):
    write_labels(files[0], image.gt_train, image.gt_label, image.image_path)


def _compact_outputs(cfg, epoch, index):
    """(what, files, writer) of each compact output of image `index` under cfg, in the order of writing."""
    return [(f"the segments at entropy threshold {cfg.entropy_threshold}", segment_files(cfg, epoch, index),
             _write_segments),
            (f"the {cfg.score} score map", [paths.score_map_file(cfg, epoch, index)], _write_score_map),
            (f"the {cfg.score} histograms of {cfg.bins} bins", [paths.image_histograms_file(cfg, epoch, index)],
             _write_histograms),
            ("the labels", [paths.labels_file(cfg, epoch, index)], _write_labels)]


def _missing(outputs):
    return [output for output in outputs if not all(map(os.path.exists, output[1]))]


def missing_outputs(cfg, epoch, index) -> list:
    """What the prepare stage has still to write of image `index`, described; [] when its probs file
    exists (everything can be computed from it) or, without --store_probs, its compact outputs do."""
    if os.path.exists(paths.probs_file(cfg, epoch, index)):
        return []
    if cfg.store_probs:
        return ["the probs file"]
    return [what for what, _, _ in _missing(_compact_outputs(cfg, epoch, index))]


def write_image_outputs(cfg, epoch, index, logits, gt_train, gt_label, image_path):
    """Writes what missing_outputs names of image `index` from its logits (float32 (C, H, W) tensor,
    on any device), train ids and label ids (uint8 (H, W)); the outputs that exist stay as they are."""
    image = _InMemory(cfg, logits, gt_train, gt_label, image_path)
    if cfg.store_probs:
        write_probs_file(paths.probs_file(cfg, epoch, index), image.probs, gt_train, gt_label, image_path,
                         logits.cpu().numpy() if cfg.store_logits else None)
        return
    for _, files, write in _missing(_compact_outputs(cfg, epoch, index)):
        write(files, image)


def written_folders(cfg, epoch) -> list:
    """The folders write_image_outputs writes to under cfg."""
    files = [paths.probs_file(cfg, epoch, 0)] + [f for _, group, _ in _compact_outputs(cfg, epoch, 0) for f in group]
    return sorted({os.path.dirname(f) for f in files})


# ---------------------------------------------------------------- reading

def _indices_in(folder, pattern):
    names = os.listdir(folder) if os.path.isdir(folder) else []
    return {int(m.group(1)) for m in map(re.compile(pattern).fullmatch, names) if m}


def image_indices(cfg, epoch) -> list:
    """Sorted indices of the images of the run: those with a probs file or compact labels."""
    indices = (_indices_in(paths.probs_dir(cfg, epoch), r"probs(\d+)\.hdf5")
               | _indices_in(paths.labels_dir(cfg, epoch), r"(\d{4,})\.npz"))
    if not indices:
        raise ProbsError(f"no outputs of the prepare stage, neither compact ones in {paths.compact_dir(cfg, epoch)} "
                         f"nor probs files (probs<i>.hdf5) in {paths.probs_dir(cfg, epoch)}: write them first with "
                         "meta_classification.py -prepare")
    return sorted(indices)


def has_outputs(cfg, epoch) -> bool:
    """Whether the prepare stage wrote anything of the run (compact outputs or probs files)."""
    folders = (paths.probs_dir(cfg, epoch), paths.labels_dir(cfg, epoch))
    return any(os.path.isdir(folder) and os.listdir(folder) for folder in folders)


def labels(cfg, epoch, index) -> tuple:
    """(gt_train_ids, image_path) of image `index`."""
    path = paths.labels_file(cfg, epoch, index)
    if os.path.exists(path):
        gt_train, _, image_path = read_labels(path)
        return gt_train, image_path
    return read_probs(paths.probs_file(cfg, epoch, index), ("gt_train_ids", "image_path"))


def image_histograms(cfg, epoch, index) -> dict:
    """Image `index`'s share of the run's score histograms, {protocol: ImageHistogram}."""
    path = paths.image_histograms_file(cfg, epoch, index)
    if os.path.exists(path):
        bins = {protocol: h.bins if h.value_range else None for protocol, h in run_histograms(cfg).items()}
        return read_image_histograms(path, bins)
    return histogram_shares(cfg, *probs_score(cfg, paths.probs_file(cfg, epoch, index), "gt_train_ids"))


def panel_score(cfg, epoch, index) -> np.ndarray:
    """The float32 map of the run's score of image `index` as the panels draw it: rounded to float16
    in the compact outputs, exact from a probs file."""
    path = paths.score_map_file(cfg, epoch, index)
    if os.path.exists(path):
        return read_score_map(path).astype(np.float32)
    return probs_score(cfg, paths.probs_file(cfg, epoch, index))[0]
