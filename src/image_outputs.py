"""What the stages after the network keep of each evaluated image, and where they find it again.

While an image's softmax is in memory the prepare stage writes either its probs file
(--store_probs: the whole float32 softmax, src/probs_file.py) or, by default, the compact outputs
that the later stages read (src/compact_file.py, src/segment_files.py), about 4.3 MB instead of 160:
    segment search     the four segment files at the run's threshold (-segment then finds them done)
    --submission       the segments searched without void, at the run's threshold
    pixel evaluation   the image's share of the histograms of the run's score and bins
    panels, -smiyc     the float16 map of the run's score (SegmentMeIfYouCan rounds scores to float16)
    all of them        the labels file: ground truth and image path, written last, so an image is
                       in the run's set once all its outputs exist
Every number is that of the probs path: the same functions on the same float32 softmax (and
logits). A compact image lacks what other settings need (another -threshold, --score or --bins):
the prepare stage runs the network again for it, and says so (PendingOutputs). The readers take an
image's compact file where it exists, else its probs file.
"""
import logging
import operator
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from src import paths, provenance
from src.compact_file import (read_image_histograms, read_labels, read_score_map, write_image_histograms,
                              write_labels, write_score_map)
from src.dataset import DATASETS
from src.metaseg import compute_metrics_components, compute_metrics_mask
from src.pixel_metrics import PAPER_BINS, ScoreHistogram, pixel_scores
from src.probs_file import ProbsError, read_probs, write_probs_file
from src.scores import SCORE_RANGES, SCORES, normalized_entropy, score_map, softmax, threshold_mask
from src.segment_files import write_components, write_metrics

logger = logging.getLogger(__name__)

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
    """Writes (metrics, components) pairs: the four of segment_files, or the two of void_free_files."""
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


def void_free_segments(cfg, probs, mask, gt_train) -> tuple:
    """(metrics, components map) of the predicted segments at `mask` searched with no pixel void, as a
    SegmentMeIfYouCan test split needs them; the labels, where there are any, only mark the false
    positives (iou0)."""
    dataset = DATASETS[cfg.VALSET]
    gt = np.where(gt_train == dataset.train_id_out, dataset.train_id_out, dataset.train_id_in).astype(np.uint8)
    return compute_metrics_components(probs, gt, mask, dataset.train_id_out)


def _write_void_free_segments(files, image):
    mask = threshold_mask(image.entropy, image.cfg.entropy_threshold)
    write_segment_files(files, void_free_segments(image.cfg, image.probs, mask, image.gt_train))


def _write_score_map(files, image):
    write_score_map(files[0], image.score)


def _write_histograms(files, image):
    write_image_histograms(files[0], histogram_shares(image.cfg, image.score, image.gt_train))


def _write_labels(files, image):
    write_labels(files[0], image.gt_train, image.gt_label, image.image_path)


def _write_probs(files, image):
    write_probs_file(files[0], image.probs, image.gt_train, image.gt_label, image.image_path,
                     image.logits.cpu().numpy() if image.cfg.store_logits else None)


@dataclass(frozen=True, eq=False)
class _Output:
    """One output of the prepare stage: `files(cfg, epoch, index)` (its record is kept with the first),
    written by `write(files, image)`; `settings`, those it depends on beyond the image (None: it is
    the image's own record, the labels or the probs file)."""
    what: str
    files: Callable
    write: Callable
    settings: dict = None


def void_free_files(cfg, epoch, index):
    return [paths.metrics_file(cfg, epoch, index, no_void=True), paths.components_file(cfg, epoch, index, no_void=True)]


def _outputs_of(cfg) -> list:
    """The outputs of the prepare stage under cfg, in the order of writing (the image's own record last)."""
    if cfg.store_probs:
        return [_Output("probs", lambda *a: [paths.probs_file(*a)], _write_probs)]
    threshold = {"threshold": cfg.entropy_threshold}
    # A split whose labels are withheld (a SegmentMeIfYouCan test split) has no segments or pixel
    # metrics to evaluate: its score maps serve the submission.
    labelled = DATASETS[cfg.VALSET].spec.split_info(cfg).labelled
    segments = [_Output(f"segments at entropy threshold {cfg.entropy_threshold}", segment_files, _write_segments,
                        threshold)] if labelled else []
    void_free = [_Output(f"segments without void at entropy threshold {cfg.entropy_threshold}",
                         void_free_files, _write_void_free_segments, threshold)] if cfg.submission else []
    histograms = [_Output(f"{cfg.score} histograms of {cfg.bins} bins", lambda *a: [paths.image_histograms_file(*a)],
                          _write_histograms, {"score": cfg.score, "bins": cfg.bins})] if labelled else []
    return [*segments, *void_free,
            _Output(f"{cfg.score} score maps", lambda *a: [paths.score_map_file(*a)], _write_score_map,
                    {"score": cfg.score}),
            *histograms, _Output("labels", lambda *a: [paths.labels_file(*a)], _write_labels)]


def write_image_outputs(cfg, epoch, index, logits, gt_train, gt_label, image_path, outputs=None):
    """Writes the prepare stage's `outputs` (default: all) of image `index` from its logits (float32
    (C, H, W) tensor, on any device), train ids and label ids (uint8 (H, W))."""
    image = _InMemory(cfg, logits, gt_train, gt_label, image_path)
    for output in _outputs_of(cfg) if outputs is None else outputs:
        output.write(output.files(cfg, epoch, index), image)


def written_folders(cfg, epoch) -> list:
    """The folders the prepare stage writes to under cfg."""
    return sorted({os.path.dirname(f) for output in _outputs_of(cfg) for f in output.files(cfg, epoch, 0)})


class PendingOutputs:
    """What the prepare stage of (cfg, epoch) has to write: `pending`, the images to run through the
    network, and of each the outputs missing or computed from other weights, data or settings.

    Each output has its record (src/provenance.py): the labels (or probs) file that of the image's
    weights and data, the others that and their settings. So a changed checkpoint or image makes the
    image's outputs pending, another -threshold, --score or --bins the outputs of those settings,
    with one log line saying why. Compact outputs keep only what the settings they were written with
    need: another setting runs the network again, and the log says so; an image whose probs file
    exists (from a run with --store_probs) and is current is read from it instead. Without the
    checkpoint, outputs that exist are used as they are. `decided`: read the choice that the first
    process of a torchrun made and recorded (Record.marked), writing nothing.
    """

    def __init__(self, cfg, epoch, dataset, decided=False):
        self.cfg, self.epoch = cfg, epoch
        checkpoint = paths.evaluated_checkpoint(cfg, epoch)
        weights = provenance.weights_identity(cfg, checkpoint)
        self.outputs = _outputs_of(cfg)
        indices = range(len(dataset))
        if not cfg.store_probs:
            probs = provenance.Record(paths.probs_dir(cfg, epoch), "probs")  # read once, not per image
            indices = [i for i in indices if not self._served_by_probs(probs, weights, dataset, i)]
        self.records, self.todo = {}, {}
        for output in reversed(self.outputs):  # the image's own record first: its log line says why
            wanted = {i: self._identity(output, weights, dataset, i) for i in indices}
            self.todo[output] = self._todo(output, wanted, weights is not None, decided)
        self.pending = sorted(set().union(*self.todo.values()))
        if not decided:
            self._log(len(dataset), weights, checkpoint)

    def _files(self, output, index):
        return output.files(self.cfg, self.epoch, index)

    def _identity(self, output, weights, dataset, index):
        identity = provenance.image_identity(weights, dataset, index)
        if self.cfg.store_probs:
            return {**identity, "logits": self.cfg.store_logits}
        return identity if output.settings is None else {"probs": identity, **output.settings}

    def _todo(self, output, wanted, checkable, decided) -> set:
        """Image indices whose `output` is to be written; wanted: image index -> identity."""
        files = {self._files(output, i)[0]: i for i in wanted}  # the record is kept with the first file

        def exists(key):
            return all(map(os.path.exists, self._files(output, files[key])))
        if not checkable:
            return {i for key, i in files.items() if not exists(key)}
        record = self.records[output] = provenance.Record(
            os.path.dirname(self._files(output, 0)[0]), f"{output.what} of {paths.epoch_pattern(self.cfg, self.epoch)}")
        keyed = {key: wanted[i] for key, i in files.items()}
        if decided:
            return {files[key] for key in record.marked(keyed, exists)}
        satisfied = provenance.logits_kept if self.cfg.store_probs else operator.eq
        own = output.settings is None
        return {files[key] for key in record.pending(keyed, exists, satisfied, drop=own, log=own)}

    def _served_by_probs(self, probs, weights, dataset, index) -> bool:
        """Whether image `index` has no labels file but a probs file of its weights and data (`probs`:
        the record of the probs files)."""
        path = paths.probs_file(self.cfg, self.epoch, index)
        if os.path.exists(paths.labels_file(self.cfg, self.epoch, index)) or not os.path.exists(path):
            return False
        recorded = {k: v for k, v in probs.identity_of(path).items() if k != "logits"}
        return weights is None or "unrecorded" in recorded or recorded == provenance.image_identity(weights, dataset,
                                                                                                      index)

    def _log(self, total, weights, checkpoint):
        where = paths.probs_dir(self.cfg, self.epoch) if self.cfg.store_probs else paths.compact_dir(self.cfg, self.epoch)
        logger.info("%s: %d of %d images to run through the network (%s)", self.cfg.VALSET, len(self.pending), total,
                    where)
        if weights is None and len(self.pending) < total:
            logger.info("checkpoint %s not found: the outputs of the prepare stage there are used as they are (their "
                        "weights cannot be checked)", checkpoint)
        own = self.outputs[-1]
        again = {output.what: len(self.todo[output] - self.todo[own]) for output in self.outputs[:-1]}
        if any(again.values()):
            logger.info("%d of them run through the network again for their %s, missing or of other inputs: "
                        "compact outputs keep what the settings they were written with need (with --store_probs "
                        "the whole softmax is kept, and another -threshold, --score or --bins needs no network)",
                        max(again.values()), " and ".join(what for what, count in again.items() if count))

    def write(self, index, logits, gt_train, gt_label, image_path, record=True):
        """Writes the pending outputs of image `index` (write_image_outputs); `record`: each in its record."""
        outputs = [output for output in self.outputs if index in self.todo[output]]
        write_image_outputs(self.cfg, self.epoch, index, logits, gt_train, gt_label, image_path, outputs)
        for output in outputs if record else ():
            if output in self.records:
                self.records[output].done(self._files(output, index)[0])

    def record_all(self):
        """Records every pending output that exists now (under torchrun, once every process wrote its own)."""
        for output, record in self.records.items():
            written = [i for i in sorted(self.todo[output]) if all(map(os.path.exists, self._files(output, i)))]
            record.done(*[self._files(output, i)[0] for i in written])
        self.flush()

    def flush(self):
        """Writes the records of what write() recorded (Record.done writes at most once a second)."""
        for record in self.records.values():
            record.flush()


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


def score_of(cfg, epoch, index) -> np.ndarray:
    """The float32 map of the run's score of image `index` for the panels and the SegmentMeIfYouCan
    protocol: rounded to float16 in the compact outputs (the benchmark's submission format, to which
    its protocol rounds every score), exact from a probs file."""
    path = paths.score_map_file(cfg, epoch, index)
    if os.path.exists(path):
        return read_score_map(path).astype(np.float32)
    return probs_score(cfg, paths.probs_file(cfg, epoch, index))[0]
