"""SegmentMeIfYouCan figures of one method on one data set (docs/BENCHMARKS.md section 2):
pixel AP, FPR95 and best F1, then sIoU gt, PPV and F1 of the components segmented at the
best-F1 threshold, from score maps and label maps read frame by frame.

    smiyc_metrics(scores, labels, track) -> {'ap', 'fpr95', 'best_f1', 'best_f1_threshold',
        'siou_gt', 'ppv', 'mean_f1', 'f1' (one per τ), 'thresholds' (the 11 τ)}

Frames. scores: (H, W) float maps, higher = more anomalous; labels: (H, W) uint8 maps,
0 in-distribution, 1 anomaly, 255 void (the obstacle track's off-road too; a data set's own
label ids are mapped to these first). Pixel metrics count the label 0 and 1 pixels of all frames.

Exact on float16. Scores are rounded to float16, the benchmark's submission format: the values
its server scores. Over float16 values the pixel curve is kept exactly, one count per value and
class (a histogram of the 2**16 bit patterns, 2 MB whatever the number of frames), so AP, FPR95
and best F1 are those of sorting all valid pixels' float16 scores, ties included: scikit-learn's
on the concatenated pixels; best_f1_threshold is the float16 value t whose scores >= t give
the best F1 (the highest t on ties). The benchmark itself approximates the curve with 768 percentile bins
per frame; finer-than-float16 score differences are merged here as in a submission. |score| >=
65520 becomes inf (ties), NaN at a valid pixel is an error.

Two passes. The components need the best-F1 threshold, known once every pixel has been counted,
so each frame is read twice. `scores` and `labels` may each be
    a re-iterable collection (list, tuple, array, any object whose iter() starts anew) or a
    callable without arguments that returns a new iterable of the frames at each call: read
    again, one frame in memory at a time;
    a one-shot iterator (a generator): then the first pass keeps a compact copy of every frame,
    the float16 scores of its non-void pixels and its labels as two bit planes (2.25 bytes per
    non-void pixel, 0.25 per void pixel: 4.7 MB for a 1024x2048 frame without void), at most
    `cache_budget` bytes in all; beyond it a MetaOodError asks for a re-iterable or a callable.
A model's scores computed on the fly suit a generator (nothing is computed twice); maps in files
suit a callable that reads them anew.

Components (per frame, t = best_f1_threshold; BENCHMARKS.md steps 1-8):
    prediction = (float16(score) >= t) & (label != 255): the pixel set of the best-F1 point. The
        benchmark writes score > t with t one of its interpolated bin edges, which scores do not
        hit; with t a score value itself, > would drop the pixels tied at t. Computed as
        score >= float16_edge(t, score dtype), without rounding the scores again.
    8-connected predicted components of fewer than S_pred pixels are removed, ground-truth
    components (label 1) of fewer than S_gt pixels become void; TRACKS: anomaly 500 / 100,
    obstacle 50 / 10. Then everything counts inside label != 255 only, with the component
    identities from before (a predicted component cut by the new void stays one).
    sIoU and PPV per component as src/component_metrics.py, pooled over frames;
    TP = #gt with sIoU >= τ, FN = the others, FP = #predicted with PPV < τ, for τ in THRESHOLDS;
    F1(τ) = 2 TP / (2 TP + FN + FP), mean_f1 = mean over the 11 τ.

Undefined values are nan, never an exception: ap and fpr95 without both classes of pixels;
best_f1 and best_f1_threshold without an anomaly pixel (then nothing is predicted); siou_gt
without a ground-truth component, ppv without a predicted one, F1(τ) with 2 TP + FN + FP = 0
(then mean_f1 too). Only false positives give F1 = 0.
"""
import itertools
import math
from typing import NamedTuple

import numpy as np
from scipy import ndimage

from src.component_metrics import EIGHT_CONNECTED, pixel_component_scores
from src.errors import MetaOodError
from src.pixel_metrics import best_f1_from_counts, exact_metrics

IN_DISTRIBUTION, ANOMALY, VOID = 0, 1, 255
# The benchmark's τ: numpy.linspace, so 0.6 is 0.6000000000000001 (src/component_metrics.py
# rounds them to the decimals instead).
THRESHOLDS = np.linspace(0.25, 0.75, 11)
DEFAULT_CACHE_BUDGET = 2 * 2**30


class Track(NamedTuple):
    min_pred_pixels: int  # S_pred: smaller predicted components are removed
    min_gt_pixels: int  # S_gt: smaller ground-truth components become void


TRACKS = {"anomaly": Track(500, 100), "obstacle": Track(50, 10)}

_PATTERNS = 2**16
_FLOAT16 = np.arange(_PATTERNS, dtype=np.uint32).astype(np.uint16).view(np.float16)
_NOT_NAN = ~np.isnan(_FLOAT16)
# The float16 values in increasing order (-0 and +0 are one) and each bit pattern's place among them.
_VALUES, _VALUE_OF_PATTERN = np.unique(_FLOAT16[_NOT_NAN], return_inverse=True)
# Histogram bin offset of a pixel by its label: in-distribution, anomaly, void, anything else.
_CLASS_OFFSET = np.full(256, 3 * _PATTERNS, np.intp)
_CLASS_OFFSET[[IN_DISTRIBUTION, ANOMALY, VOID]] = 0, _PATTERNS, 2 * _PATTERNS
_MISSING = object()
# float16_edge is exact for these (numpy rounds longdouble to float16 through float64, twice).
_SCORE_DTYPES = (np.float16, np.float32, np.float64)


def smiyc_metrics(scores, labels, track, cache_budget=DEFAULT_CACHE_BUDGET):
    """The data set's SegmentMeIfYouCan figures (module doc); track "anomaly" or "obstacle"."""
    if track not in TRACKS:
        raise ValueError(f"track: expected one of {sorted(TRACKS)}, got {track!r}")
    counts = _PixelCounts()
    cache = _FrameCache(cache_budget) if _one_shot(scores) or _one_shot(labels) else None
    for score, label in _frames(scores, labels):
        score16 = score.astype(np.float16, copy=False)
        counts.add(score16, label)
        if cache is not None:
            cache.add(score16, label)
    pixel = _pixel_figures(*counts.by_value())
    components = _ComponentCounts()
    for score, label in _frames(scores, labels) if cache is None else cache.frames():
        components.add(*_frame_components(score, label, pixel["best_f1_threshold"], TRACKS[track]))
    return {**pixel, **components.summary()}


def _one_shot(source):
    return not callable(source) and iter(source) is source


def _frames(scores, labels):
    """(float scores, uint8 labels) of each frame, checked; a fresh pass over the sources."""
    pairs = itertools.zip_longest(_fresh(scores), _fresh(labels), fillvalue=_MISSING)
    for index, (score, label) in enumerate(pairs):
        if score is _MISSING or label is _MISSING:
            raise ValueError(f"more {'label' if score is _MISSING else 'score'} maps than "
                             f"{'score' if score is _MISSING else 'label'} maps: frame {index} has only one")
        yield _checked_frame(score, label, index)


def _fresh(source):
    return iter(source() if callable(source) else source)


def _checked_frame(score, label, index):
    score, label = np.asarray(score), np.asarray(label)
    if score.ndim != 2 or score.shape != label.shape:
        raise ValueError(f"frame {index}: expected (H, W) score and label maps of one shape, got "
                         f"{score.shape} and {label.shape}")
    if label.dtype != np.uint8:
        raise ValueError(f"frame {index}: expected uint8 labels (0, 1, 255), got {label.dtype}")
    if score.dtype not in _SCORE_DTYPES:
        raise ValueError(f"frame {index}: expected float16, float32 or float64 scores, got {score.dtype}")
    return score, label


class _PixelCounts:
    """Valid pixels per float16 score and class, summed over frames (2**16 counts per class)."""

    def __init__(self):
        self.counts = np.zeros(4 * _PATTERNS, np.int64)

    def add(self, score16, label):
        codes = score16.view(np.uint16) + _CLASS_OFFSET[label]
        counts = np.bincount(codes.ravel(), minlength=4 * _PATTERNS)
        if counts[3 * _PATTERNS:].any():
            raise ValueError(f"labels: expected 0, 1 or 255, got also "
                             f"{np.setdiff1d(label, [IN_DISTRIBUTION, ANOMALY, VOID]).tolist()}")
        nan_counts = counts[:2 * _PATTERNS].reshape(2, _PATTERNS)[:, ~_NOT_NAN].sum()
        if nan_counts:
            raise ValueError(f"scores: {nan_counts} pixels with label 0 or 1 are NaN")
        self.counts += counts

    def by_value(self):
        """(in-distribution, anomaly) int64 counts per _VALUES entry."""
        return tuple(np.bincount(_VALUE_OF_PATTERN, weights=self.counts[offset:offset + _PATTERNS][_NOT_NAN],
                                 minlength=_VALUES.size).astype(np.int64)
                     for offset in (0, _PATTERNS))


def _pixel_figures(counts_in, counts_out):
    """{'ap', 'fpr95', 'best_f1', 'best_f1_threshold'} from counts per _VALUES entry."""
    if not counts_out.any():
        return {"ap": math.nan, "fpr95": math.nan, "best_f1": math.nan, "best_f1_threshold": math.nan}
    best_f1, value = best_f1_from_counts(counts_in, counts_out)
    exact = exact_metrics(counts_in, counts_out) if counts_in.any() else {"auprc": math.nan, "fpr95": math.nan}
    return {"ap": exact["auprc"], "fpr95": exact["fpr95"], "best_f1": best_f1,
            "best_f1_threshold": float(_VALUES[value])}


class _CompactFrame(NamedTuple):
    shape: tuple
    scores: np.ndarray  # float16 scores of the non-void pixels, row-major
    anomaly: np.ndarray  # packed bits of label == 1
    void: np.ndarray  # packed bits of label == 255

    def expanded(self):
        """(float16 scores, uint8 labels) of the frame; void pixels score 0, which never counts."""
        size = math.prod(self.shape)
        void = np.unpackbits(self.void, count=size).view(bool).reshape(self.shape)
        label = np.unpackbits(self.anomaly, count=size).reshape(self.shape)
        label[void] = VOID
        score16 = np.zeros(self.shape, np.float16)
        score16[~void] = self.scores
        return score16, label


class _FrameCache:
    """The compact frames of a one-shot iterator, for the second pass, within a memory budget."""

    def __init__(self, budget):
        self.budget = budget
        self.nbytes = 0
        self.compact = []

    def add(self, score16, label):
        void = label == VOID
        frame = _CompactFrame(label.shape, score16[~void], np.packbits(label == ANOMALY), np.packbits(void))
        self.nbytes += sum(array.nbytes for array in frame[1:])
        if self.nbytes > self.budget:
            raise MetaOodError(
                f"SegmentMeIfYouCan metrics read the frames twice; those of a one-shot iterator are kept, "
                f"and after {len(self.compact) + 1} frames they exceed the cache budget of {self.budget} bytes: "
                f"pass the frames as a list or another re-iterable, or as a callable returning them anew, "
                f"or raise cache_budget")
        self.compact.append(frame)

    def frames(self):
        for frame in self.compact:
            yield frame.expanded()


def _frame_components(score, label, threshold, track):
    """(sIoU per ground-truth component, PPV per predicted component) of one frame segmented where
    float16(score) >= threshold, with the size limits of `track` (module doc)."""
    # Rounding every score to float16 again would take longer than the rest.
    edge = float16_edge(threshold, score.dtype)
    _, pred_pixels, pred_ids, pred_size = _components((label != VOID) & (score >= edge), track.min_pred_pixels)
    gt_labels, _, _, gt_size = _components(label == ANOMALY, track.min_gt_pixels)
    gt_ids = gt_labels.ravel()[pred_pixels]
    # Pixels of removed predictions do not count, nor those on too small objects (void now).
    counted = (pred_size[pred_ids] > 0) & ((gt_ids == 0) | (gt_size[gt_ids] > 0))
    return pixel_component_scores(pred_ids[counted], gt_ids[counted], pred_size.size - 1, gt_size)


def float16_edge(thresholds, dtype):
    """The smallest value of the float dtype whose float16 rounding is >= threshold, for each
    float16 threshold: score >= edge is float16(score) >= threshold, since rounding is monotone."""
    thresholds = np.asarray(thresholds, np.float16)
    dtype = np.dtype(dtype)
    if dtype == np.float16:
        return thresholds
    with np.errstate(over="ignore"):  # below -65504 and from +-65520 on, float16 is +-inf: as meant
        below = np.nextafter(thresholds, np.float16(-np.inf))
        # The halfway point to the float16 value below, exact in dtype (float16 values need 11
        # bits, their mean 12), is the edge if it rounds up, else the next value of dtype is. The
        # infinities stand for +-2**16 here: float16 rounds from +-65520 (halfway from 65504) to them.
        high = np.where(thresholds == np.inf, dtype.type(2.0**16), thresholds.astype(dtype))
        low = np.where(below == -np.inf, dtype.type(-2.0**16), below.astype(dtype))
        halfway = (low + high) / 2
        rounds_up = halfway.astype(np.float16) >= thresholds
    return np.where(rounds_up, halfway, np.nextafter(halfway, dtype.type(np.inf)))


def _components(mask, min_pixels):
    """(8-connected component ids (H, W), the flat indices of mask's pixels, their ids, the pixels
    of each id, 0 for the components of fewer than min_pixels pixels)."""
    ids, n = ndimage.label(mask, structure=EIGHT_CONNECTED)
    # Masks are sparse: their pixels' ids, not whole images, give the sizes.
    pixels = np.flatnonzero(mask)
    pixel_ids = ids.ravel()[pixels]
    size = np.bincount(pixel_ids, minlength=n + 1)
    size[size < min_pixels] = 0
    return ids, pixels, pixel_ids, size


class _ComponentCounts:
    """Sums and TP / FP counts of the components of the frames seen (bounded, not a list of values)."""

    def __init__(self):
        self.siou_sum = self.ppv_sum = 0.0
        self.n_gt = self.n_pred = 0
        self.tp = np.zeros(THRESHOLDS.size, np.int64)
        self.fp = np.zeros(THRESHOLDS.size, np.int64)

    def add(self, siou, ppv):
        # per-frame sums added up, in the benchmark's order of operations
        self.siou_sum += float(np.sum(siou))
        self.ppv_sum += float(np.sum(ppv))
        self.n_gt += siou.size
        self.n_pred += ppv.size
        self.tp += (siou[:, None] >= THRESHOLDS).sum(axis=0)
        self.fp += (ppv[:, None] < THRESHOLDS).sum(axis=0)

    def summary(self):
        """{'siou_gt', 'ppv', 'mean_f1', 'f1', 'thresholds'} (module doc)."""
        fn = self.n_gt - self.tp
        f1 = [2 * tp / (2 * tp + f_n + fp) if 2 * tp + f_n + fp else math.nan
              for tp, f_n, fp in zip(self.tp.tolist(), fn.tolist(), self.fp.tolist())]
        return {
            "siou_gt": self.siou_sum / self.n_gt if self.n_gt else math.nan,
            "ppv": self.ppv_sum / self.n_pred if self.n_pred else math.nan,
            "mean_f1": sum(f1) / len(f1),  # the benchmark's order of additions
            "f1": f1,
            "thresholds": THRESHOLDS.tolist(),
        }
