"""The compact outputs of one evaluated image (the default; --store_probs writes probs files
instead, src/probs_file.py): the one module that writes and reads them, checked when read back.

The prepare stage computes, while an image's softmax is in memory, everything the later stages
read of it, and keeps that instead of the softmax (src/image_outputs.py). Besides the segment
search's four files (src/segment_files.py) it writes, per image, .npz files of
    `paths.labels_file`          `gt_train_ids`, `gt_label_ids` uint8 (H, W) and `image_path` (a
                                 string), compressed: some 20 kB;
    `paths.score_map_file`       `score`, the float16 (H, W) map of the run's score (--score), not
                                 compressed (float16 noise does not compress, and deflating 4 MB
                                 takes 100 ms): 4 MB. The panels draw it, and SegmentMeIfYouCan
                                 submissions are float16 maps: the SegmentMeIfYouCan
                                 protocol (src/smiyc.py rounds every score to float16) reads it,
                                 no other number of this pipeline;
    `paths.image_histograms_file`  the image's share of the score histograms of the pixel
                                 evaluation (pixel_metrics.ImageHistogram) for each protocol p
                                 with its own grid (paper and exact for a bounded score, exact for
                                 an unbounded one): `<p>_in`, `<p>_out` int64 counts, `<p>_range`
                                 float64 (low, high), `<p>_grid` int64 (exponent, first); compressed,
                                 some 30 kB at 10000 bins.
"""
import math

import numpy as np

from src.atomic import read_npz, unusable, write_npz
from src.pixel_metrics import ImageHistogram

RERUN = "meta_classification.py -prepare or evaluation.py (with the same settings)"
LABELS = "labels (uint8 (H, W) gt_train_ids and gt_label_ids, a string image_path)"
SCORE_MAP = "a score map (one float16 (H, W) array named score)"
HISTOGRAMS = "an image's share of score histograms (<p>_in, <p>_out int64 counts, <p>_range float64 (2,), " \
             "<p>_grid int64 (2,) per protocol p)"
_HISTOGRAM_ARRAYS = {"in": np.int64, "out": np.int64, "range": np.float64, "grid": np.int64}


def write_labels(path, gt_train, gt_label, image_path):
    write_npz(path, {"gt_train_ids": gt_train, "gt_label_ids": gt_label, "image_path": np.array(image_path)},
              compressed=True)


def read_labels(path) -> tuple:
    """(gt_train_ids, gt_label_ids, image_path) of the labels file at `path`."""
    arrays = read_npz(path, LABELS, RERUN)
    if sorted(arrays) != ["gt_label_ids", "gt_train_ids", "image_path"]:
        raise unusable(path, f"arrays {', '.join(arrays) or 'none'}", LABELS, RERUN)
    gt_train, gt_label, image_path = arrays["gt_train_ids"], arrays["gt_label_ids"], arrays["image_path"]
    if not (gt_train.dtype == gt_label.dtype == np.uint8 and gt_train.ndim == 2 and gt_label.shape == gt_train.shape
            and image_path.dtype.kind == "U" and image_path.ndim == 0):
        found = ", ".join(f"{a.dtype} {a.shape}" for a in (gt_train, gt_label, image_path))
        raise unusable(path, f"gt_train_ids, gt_label_ids, image_path {found}", LABELS, RERUN)
    return gt_train, gt_label, str(image_path)


def write_score_map(path, score):
    write_npz(path, {"score": np.asarray(score).astype(np.float16)})


def read_score_map(path) -> np.ndarray:
    """The float16 (H, W) score map at `path`."""
    arrays = read_npz(path, SCORE_MAP, RERUN)
    score = arrays.get("score")
    if list(arrays) != ["score"] or score.dtype != np.float16 or score.ndim != 2:
        found = ", ".join(f"{k} {a.dtype} {a.shape}" for k, a in arrays.items()) or "no array"
        raise unusable(path, f"found {found}", SCORE_MAP, RERUN)
    return score


def write_image_histograms(path, shares: dict):
    """`shares`: {protocol: ImageHistogram}."""
    write_npz(path, {f"{protocol}_{name}": array for protocol, share in shares.items()
                     for name, array in zip(_HISTOGRAM_ARRAYS, _histogram_arrays(share))}, compressed=True)


def _histogram_arrays(share):
    return (share.counts_in, share.counts_out, np.array([share.low, share.high], np.float64),
            np.array([share.exponent, share.first], np.int64))


def read_image_histograms(path, bins: dict) -> dict:
    """{protocol: ImageHistogram} at `path`; `bins`: {protocol: its number of bins, None for the
    grid of an unbounded score}, the protocols the file must hold."""
    arrays = read_npz(path, HISTOGRAMS, RERUN)
    names = [f"{p}_{name}" for p in bins for name in _HISTOGRAM_ARRAYS]
    if sorted(arrays) != sorted(names):
        raise unusable(path, f"arrays {', '.join(arrays) or 'none'} (expected {', '.join(names)})", HISTOGRAMS,
                       RERUN)
    shares = {}
    for protocol, n in bins.items():
        counts_in, counts_out, (low, high), (exponent, first) = (arrays[f"{protocol}_{k}"] for k in _HISTOGRAM_ARRAYS)
        problem = _share_problem(protocol, arrays, n)
        if problem:
            raise unusable(path, problem, HISTOGRAMS, RERUN)
        shares[protocol] = ImageHistogram(counts_in, counts_out, float(low), float(high), int(exponent), int(first))
    return shares


def _share_problem(protocol, arrays, bins):
    """What makes the arrays of `protocol` no share of a histogram of `bins` bins; None if nothing."""
    counts_in, counts_out, value_range, grid = (arrays[f"{protocol}_{k}"] for k in _HISTOGRAM_ARRAYS)
    found = ", ".join(f"{a.dtype} {a.shape}" for a in (counts_in, counts_out, value_range, grid))
    if any(arrays[f"{protocol}_{k}"].dtype != t for k, t in _HISTOGRAM_ARRAYS.items()) or value_range.shape != (2,) \
            or grid.shape != (2,) or counts_in.ndim != 1 or counts_out.shape != counts_in.shape:
        return f"{protocol} counts in and out, range, grid {found}"
    if bins is not None and counts_in.shape != (bins,):
        return f"{protocol} counts of {counts_in.size} bins, not {bins} (another --bins)"
    if bins is None and counts_in.size and not all(map(math.isfinite, value_range)):
        return f"{protocol} scores from {value_range[0]} to {value_range[1]}"
    return None
