"""Pixel OoD scores: one (H, W) float32 map per image, higher = more out-of-distribution.

| name       | from    | score                                   | range            |
|------------|---------|-----------------------------------------|------------------|
| `entropy`  | probs   | H(p) / log C, H(p) = -sum_c p_c log p_c | [0, 1]           |
| `msp`      | probs   | 1 - max_c p_c                           | [0, 1 - 1/C]     |
| `maxlogit` | logits  | -max_c z_c                              | unbounded        |
| `energy`   | logits  | -log sum_c exp(z_c)                     | unbounded        |

`entropy` is the paper's score (METHOD.md §6), with 0 log 0 = 0. It is taken of p as stored
(softmax output, sums to 1 up to float32 rounding); scipy.stats.entropy would renormalise p
first, which changes the result by ~1e-7. `SCORE_RANGES` gives the histogram range each
score needs (src/pixel_metrics.py): a fixed [0, 1] for the bounded ones, None (a grid that
adapts to the data) for the unbounded ones.

The maps are computed on bands of rows so that the (C, rows, W) temporaries stay in
the CPU cache; at 19 x 1024 x 2048 this makes numpy several times faster than one
pass over the whole array.
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


def _row_bands(height):
    for top in range(0, height, ROWS_PER_BAND):
        yield slice(top, min(top + ROWS_PER_BAND, height))


def normalized_entropy(probs):
    """H(p) / log C per pixel of softmax probabilities (C, H, W), 0 log 0 = 0, clipped to [0, 1]."""
    probs = _checked(probs, "probs")
    num_classes, height, width = probs.shape
    out = np.empty((height, width), np.float32)
    band = np.empty((num_classes, ROWS_PER_BAND, width), np.float32)
    # log 0 = -inf and 0 * -inf = nan: a band with an exact zero in p is computed again with
    # p raised to the smallest float32 > 0 inside the log, which leaves log p unchanged for
    # every p > 0 and gives 0 * log(tiny) = 0. Doing this only where needed saves a third.
    with np.errstate(divide="ignore", invalid="ignore"):
        for rows in _row_bands(height):
            p = probs[:, rows]
            plogp = band[:, :p.shape[1]]
            np.log(p, out=plogp)
            plogp *= p
            entropy = np.sum(plogp, axis=0, out=out[rows])
            if np.isnan(entropy).any():
                np.maximum(p, _SMALLEST_FLOAT32, out=plogp)
                np.log(plogp, out=plogp)
                plogp *= p
                np.sum(plogp, axis=0, out=entropy)
    out /= -np.log(num_classes)
    # float32 rounding can leave a uniform p a few ulp above 1.
    return np.clip(out, 0.0, 1.0, out=out)


def max_softmax_score(probs):
    """1 - max_c p_c per pixel of softmax probabilities (C, H, W)."""
    probs = _checked(probs, "probs")
    out = np.max(probs, axis=0)
    np.subtract(1.0, out, out=out)
    return out


def max_logit_score(logits):
    """-max_c z_c per pixel of logits (C, H, W)."""
    logits = _checked(logits, "logits")
    out = np.max(logits, axis=0)
    return np.negative(out, out=out)


def energy_score(logits):
    """-log sum_c exp(z_c) per pixel of logits (C, H, W), computed as -(m + log sum exp(z - m)), m = max z."""
    logits = _checked(logits, "logits")
    num_classes, height, width = logits.shape
    out = np.empty((height, width), np.float32)
    band = np.empty((num_classes, ROWS_PER_BAND, width), np.float32)
    for rows in _row_bands(height):
        z = logits[:, rows]
        shifted = band[:, :z.shape[1]]
        top = np.max(z, axis=0)
        np.subtract(z, top, out=shifted)
        np.exp(shifted, out=shifted)
        lse = np.sum(shifted, axis=0, out=out[rows])
        np.log(lse, out=lse)
        lse += top
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
