"""Pixel-level OoD metrics (AUROC, FPR95, AUPRC) from score histograms (docs/METHOD.md §6).

Accumulation: `ScoreHistogram.update` adds one image, the histogram of the OoD score over its
in-distribution pixels (gt == train_id_in) and over its OoD pixels (gt == train_id_out); void
and every other id are left out. Memory: two int64 arrays of `bins` counts, whatever the
number of images.

From counts to metrics, without expanding counts into per-sample lists (O(bins) time and
memory): a histogram is a ranking with ties. Each non-empty bin, from the highest score down,
is one threshold k, and all samples in a bin are tied. OoD is the positive class:
TP_k, FP_k = OoD, in-distribution samples in bins >= k. This is how scikit-learn treats equal
scores, so with the same formulas the results are scikit-learn's on the binned samples:
    ROC  (FP_k / N_in, TP_k / N_out), starting at (0, 0); AUROC = trapezoid area.
    AP   sum_k (R_k - R_{k-1}) P_k, R_k = TP_k / N_out, P_k = TP_k / (TP_k + FP_k)
         (a step sum, no interpolation) = average_precision_score.
    F1   2 TP_k / (TP_k + FP_k + N_out) = 2 P_k R_k / (P_k + R_k); best_f1_from_counts gives the
         highest and its bin (SegmentMeIfYouCan's best F1 and threshold).

Two protocols (`PROTOCOLS`):
    paper  The reference's numbers, from 100 bins over [0, 1]. It rescaled the counts and
           expanded them into sample lists for scikit-learn: ROC on floor(c / sum(c) * 1e5)
           per class (balanced classes), PR on floor(c / sum(c) * 1e7 * r_class) with
           r_in = N_in / (N_in + N_out), r_out = 1 - r_in. ROC points collinear with their
           two neighbours are dropped (roc_curve's drop_intermediate) and FPR95 = FPR at the
           kept point whose TPR is closest to 0.95, the first one on ties. Same floating-point
           operations as the reference: equal to the golden values.
    exact  Raw counts of fine bins (1e4 - 1e5). FPR95 = FPR at the first threshold, from high
           scores to low, whose TPR >= 0.95 (SegmentMeIfYouCan). Equal to scikit-learn on the raw
           per-pixel scores (roc_auc_score, average_precision_score) up to the ties that
           binning creates between different scores in one bin: on Beta-distributed test
           scores, AUROC within 1e-6 and AUPRC within 1e-4 at 1e4 bins (1e-5 at 1e5 bins).
           Scores on a discrete set (one value per bin) give scikit-learn's numbers exactly.

Histogram range. A bounded score (entropy, msp; scores.SCORE_RANGES) uses a fixed range and
np.histogram's bins (bin i = [edge_i, edge_i+1), the last one closed); a score outside the range
is an error, never silently dropped. An unbounded score (maxlogit, energy) uses
value_range=None: bins of width w = 2**e aligned on multiples of w (bin k = [k w, (k+1) w)),
a window of `bins` consecutive k. The first image gets the finest w whose window holds its
scores, centred; when a later image falls outside, the window moves and w doubles (bin pairs
merge) as often as needed to hold everything seen. One pass, fixed memory, and at the end
w < 2 * (score span) / (bins - 1). Since floor(s / 2**e) is exact in floating point, the merged
counts are exactly those the final grid gives directly.

One image's share (`ImageHistogram`, what the compact outputs keep instead of its scores, see
src/compact_file.py): for a bounded score its counts on the histogram's bins; for an unbounded one
its smallest and largest score and its counts on a grid of width 2**e' covering them, with
e' = floor(log2(span / bins)) - 1 (span as in `_grid_exponent`; at most 4 * bins + 2 bins). Adding
it fits the window to the two scores, as their pixels would, then merges its bins: the window's
exponent e is never below e': when the window moves, its span holds the image's; when it holds
the image already, the image's span is below its width bins * 2**e, and the image's scores lie
within (bins + 2) * 2**e of those that placed it, so their magnitude term gives
floor(log2(span / bins)) <= e + 1. And floor(s / 2**e) = floor(s / 2**e') >> (e - e').
`add` is this with the image's own share, so both give the same counts bit for bit.
"""
import math
from typing import NamedTuple

import numpy as np

PAPER_BINS = 100
FPR95_TPR = 0.95


def pixel_scores(score_map, gt_train, train_id_in, train_id_out):
    """(scores of the in-distribution pixels, scores of the OoD pixels) of one image, 1-D.

    Selecting once serves several histograms of one image (paper and exact protocol).
    """
    score_map, gt_train = np.asarray(score_map), np.asarray(gt_train)
    if score_map.shape != gt_train.shape:
        raise ValueError(f"score map of shape {score_map.shape} and ground truth of shape "
                         f"{gt_train.shape}: expected the same shape")
    return score_map[gt_train == train_id_in], score_map[gt_train == train_id_out]


class ImageHistogram(NamedTuple):
    """One image's share of a ScoreHistogram (module doc): int64 counts of its in-distribution and
    OoD pixels; of an unbounded score also its smallest and largest score and the grid of the counts,
    bin j = [(first + j) 2**exponent, (first + j + 1) 2**exponent). No score: empty counts."""
    counts_in: np.ndarray
    counts_out: np.ndarray
    low: float = math.nan
    high: float = math.nan
    exponent: int = 0
    first: int = 0


class ScoreHistogram:
    """Histograms of a pixel OoD score for in-distribution and OoD pixels, summed over images.

    value_range: (low, high) for a bounded score, None for an unbounded one (module doc).
    counts_in, counts_out: int64 (bins,) counts, bin order = increasing score.
    """

    def __init__(self, bins, value_range=(0.0, 1.0)):
        if int(bins) < 2:
            raise ValueError(f"histogram bins (--bins): expected an integer >= 2, got {bins}")
        if value_range is not None and not float(value_range[0]) < float(value_range[1]):
            raise ValueError(f"histogram value_range: expected (low, high) with low < high, got {value_range}")
        self.bins = int(bins)
        self.value_range = None if value_range is None else (float(value_range[0]), float(value_range[1]))
        self.counts_in = np.zeros(self.bins, np.int64)
        self.counts_out = np.zeros(self.bins, np.int64)
        # Grid of an unbounded score: bin width 2**_exponent, absolute index of the first bin.
        self._exponent = None
        self._first = 0

    @property
    def edges(self):
        """float64 (bins + 1,) bin edges (np.histogram compares float32 scores with the float32 edges)."""
        if self.value_range is not None:
            return np.linspace(*self.value_range, self.bins + 1)
        if self._exponent is None:
            raise ValueError("the histogram of an unbounded score has no edges before its first update")
        return np.ldexp(np.arange(self._first, self._first + self.bins + 1, dtype=np.float64), self._exponent)

    def update(self, score_map, gt_train, train_id_in, train_id_out):
        """Adds the pixels of one image: score_map (H, W) float, gt_train (H, W) train ids."""
        self.add(*pixel_scores(score_map, gt_train, train_id_in, train_id_out))

    def add(self, values_in, values_out):
        """Adds the scores of in-distribution and of OoD pixels (1-D arrays, see pixel_scores)."""
        self.add_image(self.image_histogram(values_in, values_out))

    def image_histogram(self, values_in, values_out) -> ImageHistogram:
        """The share of one image's scores (as `add` takes them), to be added later by add_image."""
        if self.value_range is not None:
            return ImageHistogram(self._bounded_counts(values_in), self._bounded_counts(values_out))
        nonempty = [v for v in (values_in, values_out) if v.size]
        if not nonempty:
            return ImageHistogram(np.zeros(0, np.int64), np.zeros(0, np.int64))
        low = min(float(v.min()) for v in nonempty)
        high = max(float(v.max()) for v in nonempty)
        if not (math.isfinite(low) and math.isfinite(high)):
            raise ValueError(f"scores must be finite, got min {low}, max {high}")
        exponent = _finest_exponent(low, high, self.bins) - 1
        first, size = _bin_of(low, exponent), _bin_of(high, exponent) - _bin_of(low, exponent) + 1
        counts_in, counts_out = (np.bincount(_bins_of(v, exponent) - first, minlength=size)
                                 for v in (values_in, values_out))
        return ImageHistogram(counts_in, counts_out, low, high, exponent, first)

    def share_from(self, finer, share: ImageHistogram, dtype):
        """This bounded histogram's share of an image, from `share`, the share of the histogram `finer`
        of the same scores (of `dtype`): the sums of groups of finer's bins, if every r-th edge of
        finer's grid is an edge of this one's as np.histogram makes them for `dtype` (it assigns a score
        by comparing it with them: the paper protocol's 100 float32 edges are every 100th of 10000).
        None where the grids are not so (then image_histogram it is); no second pass over the scores."""
        if self.value_range is None or finer.value_range != self.value_range or finer.bins % self.bins \
                or np.dtype(dtype) not in (np.float32, np.float64):
            return None
        edges, fine_edges = (np.histogram_bin_edges(np.empty(0, dtype), bins=h.bins, range=h.value_range)
                             for h in (self, finer))
        group = finer.bins // self.bins
        if not np.array_equal(fine_edges[::group], edges):
            return None
        return ImageHistogram(*(counts.reshape(self.bins, group).sum(axis=1) for counts in share[:2]))

    def add_image(self, image: ImageHistogram):
        """Adds one image's share (image_histogram of this histogram's bins and range, or read back)."""
        if self.value_range is not None:
            if image.counts_in.shape != (self.bins,) or image.counts_out.shape != (self.bins,):
                raise ValueError(f"image histogram of {image.counts_in.shape} and {image.counts_out.shape} "
                                 f"counts for a histogram of {self.bins} bins")
            self.counts_in += image.counts_in
            self.counts_out += image.counts_out
            return
        if not image.counts_in.size:
            return
        self._fit_grid(image.low, image.high)
        shift = self._exponent - image.exponent
        if shift < 0:  # impossible for a share of image_histogram (module doc); one read back may be of other bins
            raise ValueError(f"image histogram of bin width 2**{image.exponent}, coarser than the histogram's "
                             f"2**{self._exponent}: it is not of {self.bins} bins")
        bins = ((image.first + np.arange(image.counts_in.size, dtype=np.int64)) >> shift) - self._first
        for counts, added in ((self.counts_in, image.counts_in), (self.counts_out, image.counts_out)):
            np.add.at(counts, bins, added)

    def _bounded_counts(self, values):
        counts, _ = np.histogram(values, bins=self.bins, range=self.value_range)
        if counts.sum() != values.size:
            low, high = self.value_range
            raise ValueError(f"{values.size - counts.sum()} of {values.size} scores lie outside the "
                             f"histogram range [{low}, {high}] or are not finite (min {values.min()}, "
                             f"max {values.max()}): an unbounded score needs value_range=None")
        return counts

    def _fit_grid(self, low, high):
        """Moves and coarsens the grid of an unbounded score until it holds scores low..high too."""
        if self._exponent is not None and self._holds(low) and self._holds(high):
            return
        occupied = np.flatnonzero(self.counts_in | self.counts_out)
        if occupied.size:
            # A bin's left edge falls into the same coarser bin as every score in it.
            low = min(low, math.ldexp(self._first + occupied[0], self._exponent))
            high = max(high, math.ldexp(self._first + occupied[-1], self._exponent))
        exponent = _grid_exponent(low, high, self.bins, finest=self._exponent)
        first_bin, last_bin = _bin_of(low, exponent), _bin_of(high, exponent)
        first = first_bin - (self.bins - (last_bin - first_bin + 1)) // 2
        if occupied.size:
            moved = ((self._first + occupied) >> (exponent - self._exponent)) - first
            for counts in (self.counts_in, self.counts_out):
                kept = counts[occupied]
                counts[:] = 0
                np.add.at(counts, moved, kept)
        self._exponent, self._first = exponent, first

    def _holds(self, value):
        return 0 <= _bin_of(value, self._exponent) - self._first < self.bins


def _bin_of(value, exponent):
    return math.floor(math.ldexp(value, -exponent))


def _bins_of(values, exponent):
    return np.floor(np.ldexp(values, -exponent)).astype(np.int64)


def _finest_exponent(low, high, bins):
    """floor(log2(span / bins)): no coarser grid is needed for [low, high]."""
    # Bins finer than float32 resolution at the scores' magnitude would only stay empty.
    span = max(high - low, max(abs(low), abs(high), 1.0) * 2.0 ** -23)
    return math.floor(math.log2(span / bins))


def _grid_exponent(low, high, bins, finest=None):
    """Smallest e >= finest, above float32 resolution, such that [low, high] lies in `bins`
    consecutive bins of width 2**e."""
    exponent = _finest_exponent(low, high, bins)
    if finest is not None:
        exponent = max(exponent, finest)
    while _bin_of(high, exponent) - _bin_of(low, exponent) >= bins:
        exponent += 1
    return exponent


# ---------------------------------------------------------------- counts -> metrics

def _checked_counts(counts_in, counts_out, what="histogram", need_in=True):
    counts_in, counts_out = np.asarray(counts_in), np.asarray(counts_out)
    if counts_in.ndim != 1 or counts_in.shape != counts_out.shape:
        raise ValueError(f"{what}: expected two 1-D count arrays of equal length, got shapes "
                         f"{counts_in.shape} and {counts_out.shape}")
    if (counts_in < 0).any() or (counts_out < 0).any():
        raise ValueError(f"{what}: counts must be >= 0")
    if counts_out.sum() == 0:
        raise ValueError(f"{what}: no OoD pixel (gt == train_id_out) was counted; "
                         f"AUROC, FPR95, AUPRC and F1 need OoD pixels")
    if need_in and counts_in.sum() == 0:
        raise ValueError(f"{what}: no in-distribution pixel (gt == train_id_in) was counted; "
                         f"AUROC, FPR95 and AUPRC need both classes")
    return counts_in.astype(np.int64), counts_out.astype(np.int64)


def _cumulative_counts(counts_in, counts_out):
    """FP_k, TP_k (float64, as scikit-learn) at each non-empty bin, from the highest score down."""
    nonempty = (counts_in + counts_out)[::-1] > 0
    fps = np.cumsum(counts_in[::-1][nonempty], dtype=np.float64)
    tps = np.cumsum(counts_out[::-1][nonempty], dtype=np.float64)
    return fps, tps


def _roc_points(fps, tps, drop_intermediate=True):
    if drop_intermediate and fps.size > 2:
        corner = np.r_[True, (np.diff(fps, 2) != 0) | (np.diff(tps, 2) != 0), True]
        fps, tps = fps[corner], tps[corner]
    fps, tps = np.r_[0.0, fps], np.r_[0.0, tps]
    return fps / fps[-1], tps / tps[-1]


def roc_curve_from_counts(counts_in, counts_out, drop_intermediate=True):
    """(fpr, tpr) as sklearn.metrics.roc_curve gives them for the binned samples."""
    return _roc_points(*_cumulative_counts(*_checked_counts(counts_in, counts_out)), drop_intermediate)


def _pr_points(fps, tps):
    # scikit-learn's order: curve reversed to end at recall 0, so that the floats agree too.
    precision = np.r_[(tps / (tps + fps))[::-1], 1.0]
    recall = np.r_[(tps / tps[-1])[::-1], 0.0]
    return precision, recall


def pr_curve_from_counts(counts_in, counts_out):
    """(precision, recall) as sklearn.metrics.precision_recall_curve gives them for the binned samples."""
    return _pr_points(*_cumulative_counts(*_checked_counts(counts_in, counts_out)))


def _average_precision(fps, tps):
    precision, recall = _pr_points(fps, tps)
    return float(max(0.0, -np.sum(np.diff(recall) * precision[:-1])))


def _rescaled(counts, total, ratio=1.0):
    """floor(c / sum(c) * total * ratio): the reference's rounding, in its order of operations."""
    return np.floor(counts / counts.sum() * total * ratio).astype(np.int64)


def paper_metrics(counts_in, counts_out):
    """{'auroc', 'fpr95', 'auprc'} of the reference protocol (module doc) from its 100-bin counts."""
    counts_in, counts_out = _checked_counts(counts_in, counts_out)
    fpr, tpr = roc_curve_from_counts(_rescaled(counts_in, 1e5), _rescaled(counts_out, 1e5))
    ratio_in = counts_in.sum() / (counts_in.sum() + counts_out.sum())
    pr_counts = _checked_counts(_rescaled(counts_in, 1e7, ratio_in), _rescaled(counts_out, 1e7, 1 - ratio_in),
                                what="paper protocol (counts rescaled to 1e7 samples)")
    return {
        "auroc": float(np.trapezoid(tpr, fpr)),
        "fpr95": float(fpr[np.argmin(np.abs(tpr - FPR95_TPR))]),
        "auprc": _average_precision(*_cumulative_counts(*pr_counts)),
    }


def exact_metrics(counts_in, counts_out):
    """{'auroc', 'fpr95', 'auprc'} of the raw counts of fine bins (module doc)."""
    fps, tps = _cumulative_counts(*_checked_counts(counts_in, counts_out))
    fpr, tpr = _roc_points(fps, tps)
    first_reaching = np.argmax(tps / tps[-1] >= FPR95_TPR)
    return {
        "auroc": float(np.trapezoid(tpr, fpr)),
        "fpr95": float(fps[first_reaching] / fps[-1]),
        "auprc": _average_precision(fps, tps),
    }


def best_f1_from_counts(counts_in, counts_out):
    """(best F1, bin k): F1 = 2 TP / (TP + FP + N_out), with the bins >= k counted as OoD, is
    highest at k; on ties the highest such k. Needs OoD counts only."""
    counts_in, counts_out = _checked_counts(counts_in, counts_out, need_in=False)
    fps, tps = _cumulative_counts(counts_in, counts_out)
    f1 = 2 * tps / (tps + fps + tps[-1])
    best = int(np.argmax(f1))  # the first maximum from the highest score down
    return float(f1[best]), int(np.flatnonzero(counts_in + counts_out)[::-1][best])


PROTOCOLS = {"paper": paper_metrics, "exact": exact_metrics}
