"""Pixel OoD scores: one (H, W) float32 map per image, higher = more out-of-distribution.

| name       | from    | score                                   | range            |
|------------|---------|-----------------------------------------|------------------|
| `entropy`  | probs   | H(p) / log C, H(p) = -sum_c p_c log p_c | [0, 1]           |
| `msp`      | probs   | 1 - max_c p_c                           | [0, 1 - 1/C]     |
| `maxlogit` | logits  | -max_c z_c                              | unbounded        |
| `energy`   | logits  | -log sum_c exp(z_c)                     | unbounded        |

`entropy` is the paper's score (docs/METHOD.md §6), with 0 log 0 = 0. It is taken of p as stored
(softmax output, sums to 1 up to float32 rounding); scipy.stats.entropy would renormalise p
first, which changes the result by ~1e-7. `SCORE_RANGES` gives the histogram range each
score needs (src/pixel_metrics.py): a fixed [0, 1] for the bounded ones, None (a grid that
adapts to the data) for the unbounded ones.

The maps are computed on bands of rows so that the (C, rows, W) temporaries stay in the
CPU cache: at 19 x 1024 x 2048 about twice as fast as whole-array numpy (whose temporaries
are 150 MB), and faster than torch's entr or xlogy on 2 threads.
"""
import numpy as np

ROWS_PER_BAND = 16
_SMALLEST_FLOAT32 = np.finfo(np.float32).smallest_subnormal


def _checked(array, name):
    """`array` as float32 (C, H, W), C >= 2; a ValueError naming `name` otherwise."""
    array = np.asarray(array, dtype=np.float32)
    if array.ndim != 3 or array.shape[0] < 2:
        raise ValueError(f"{name}: expected an array of shape (C, H, W) with C >= 2 classes, "
                         f"got shape {array.shape}")
    return array


def _banded_map(array, name, fill_band):
    """(H, W) float32 map; fill_band(rows of array, float32 scratch of their shape, rows of the map)."""
    array = _checked(array, name)
    num_classes, height, width = array.shape
    out = np.empty((height, width), np.float32)
    scratch = np.empty((num_classes, ROWS_PER_BAND, width), np.float32)
    for top in range(0, height, ROWS_PER_BAND):
        rows = slice(top, min(top + ROWS_PER_BAND, height))
        band = array[:, rows]
        fill_band(band, scratch[:, :band.shape[1]], out[rows])
    return out


def _entropy_band(p, plogp, entropy):
    np.log(p, out=plogp)
    plogp *= p
    np.sum(plogp, axis=0, out=entropy)
    # log 0 = -inf and 0 * -inf = nan: a band with an exact zero in p is computed again with
    # p raised to the smallest float32 > 0 inside the log, which leaves log p unchanged for
    # every p > 0 and gives 0 * log(tiny) = 0. Doing this only where needed saves a third.
    if np.isnan(entropy).any():
        np.maximum(p, _SMALLEST_FLOAT32, out=plogp)
        np.log(plogp, out=plogp)
        plogp *= p
        np.sum(plogp, axis=0, out=entropy)


def normalized_entropy(probs):
    """H(p) / log C per pixel of softmax probabilities (C, H, W), 0 log 0 = 0, clipped to [0, 1]."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = _banded_map(probs, "probs", _entropy_band)
    out /= -np.log(np.shape(probs)[0])
    # float32 rounding can leave a uniform p a few ulp above 1.
    return np.clip(out, 0.0, 1.0, out=out)


def entropy_mask(probs, threshold):
    """uint8 (H, W) OoD prediction of MetaSeg: 1 where the normalized entropy is >= `threshold`."""
    return threshold_mask(normalized_entropy(probs), threshold)


def threshold_mask(entropy, threshold):
    """entropy_mask of the probabilities whose normalized_entropy is `entropy`."""
    return (entropy >= threshold).view(np.uint8)


def softmax(logits):
    """Softmax probabilities (C, H, W) float32 of logits (C, H, W): exp(z - max z) / sum exp(z - max z)
    over the classes, on bands of rows (4x faster than torch's softmax over the class axis on 2 CPU
    threads, which strides through the whole array for every class)."""
    logits = _checked(logits, "logits")
    probs = np.empty_like(logits)
    for top in range(0, logits.shape[1], ROWS_PER_BAND):
        rows = slice(top, top + ROWS_PER_BAND)
        band = probs[:, rows]
        np.subtract(logits[:, rows], logits[:, rows].max(axis=0), out=band)
        np.exp(band, out=band)
        band /= band.sum(axis=0)
    return probs


def max_softmax_score(probs):
    """1 - max_c p_c per pixel of softmax probabilities (C, H, W)."""
    out = np.max(_checked(probs, "probs"), axis=0)
    return np.subtract(1.0, out, out=out)


def max_logit_score(logits):
    """-max_c z_c per pixel of logits (C, H, W)."""
    out = np.max(_checked(logits, "logits"), axis=0)
    return np.negative(out, out=out)


def _log_sum_exp_band(z, shifted, lse):
    top = np.max(z, axis=0)
    np.subtract(z, top, out=shifted)
    np.exp(shifted, out=shifted)
    np.sum(shifted, axis=0, out=lse)
    np.log(lse, out=lse)
    lse += top


def energy_score(logits):
    """-log sum_c exp(z_c) per pixel of logits (C, H, W), computed as -(m + log sum exp(z - m)), m = max z."""
    out = _banded_map(logits, "logits", _log_sum_exp_band)
    return np.negative(out, out=out)


# name -> (function, which network output it takes)
SCORES = {
    "entropy": (normalized_entropy, "probs"),
    "msp": (max_softmax_score, "probs"),
    "maxlogit": (max_logit_score, "logits"),
    "energy": (energy_score, "logits"),
}
# name -> histogram value range; None: unbounded, the histogram adapts its grid to the data.
SCORE_RANGES = {"entropy": (0.0, 1.0), "msp": (0.0, 1.0), "maxlogit": None, "energy": None}


def score_map(name, probs=None, logits=None):
    """The (H, W) float32 map of score `name` (see SCORES) from probs or logits (C, H, W)."""
    if name not in SCORES:
        raise ValueError(f"unknown score {name!r} (--score): expected one of {', '.join(SCORES)}")
    function, source = SCORES[name]
    array = probs if source == "probs" else logits
    if array is None:
        hint = " (write the probs files with --store_logits)" if source == "logits" else ""
        raise ValueError(f"score {name!r} needs the network's {source}, none were given{hint}")
    return function(array)
