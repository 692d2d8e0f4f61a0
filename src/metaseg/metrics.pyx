# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""MetaSeg segment metrics (docs/METHOD.md §4).

The metrics read `probs` only at segment pixels and their 8-neighbours: segments
are labelled by one breadth-first search over a byte mask, then one row-major
sweep over the whole image (skipping pixels outside the segments) accumulates the
sums over their own pixels, and one walk over each segment's boundary the sums
over outside neighbours.
Sums are accumulated in float64 (the reference used float32 numpy scalars; the
difference stays within rtol 1e-5 / atol 1e-6 on every golden case).

Returned values
    metrics: dict, keys in the reference's order, one entry per segment in
        segment order (segment k is entry k-1); each value a 1-D numpy array,
        int64 for the integer keys, float64 for the others.
    components: int32 (H, W): +k on inner and -k on boundary pixels of
        segment k, 0 elsewhere (int32, so more than 32767 segments work).

Segments without boundary (a segment that fills the whole image: the reference
divided by zero here) are defined as if the boundary held one pixel for the
ratios, and like the inner values of a segment without inner pixels for the
boundary means:
    S_rel = S / max(S_bd, 1) = S,  S_rel_in = S_in / max(S_bd, 1) = S_in,
    h_bd = h_var_bd = 0,  ndist<c> = 0 (no neighbour pair).
The relative metrics thus fall back to the plain size; every value is finite.
"""
import numpy as np

from libc.stdint cimport int32_t, int64_t, uint8_t
from libc.math cimport log
from libc.string cimport memcpy

# Columns of the per-segment integer counts.
cdef enum:
    N_S        # pixels
    N_BD       # boundary pixels
    N_I        # pixels inside the other mask (intersection)
    N_G        # pixels of other-mask components that touch the segment (adjusted union)
    N_PAIRS    # (segment pixel, outside neighbour) pairs
    N_FIRST    # flat index of the first pixel in row-major order
    N_COUNTS

# Columns of the per-segment float sums: row, column, then for each heat map
# h in (E, D, V) the sum and the sum of squares over inner, then boundary pixels.
cdef enum:
    F_ROW
    F_COL
    F_HEAT
    N_HEAT_SUMS = 4
    N_SUMS = F_HEAT + 3 * N_HEAT_SUMS

HEAT_MAPS = ("E", "D", "V")
cdef enum:
    NO_CLASS = 255  # argmax cache: not computed yet (so at most 255 classes)


# ---------------------------------------------------------------- logarithm

cdef inline float _log(float x) noexcept nogil:
    """Natural log of a normal positive float, branch-free so loops vectorize.

    x = 2^k m with m in [sqrt(1/2), sqrt(2)); log(m) by the Cephes single
    precision polynomial (error about 1e-7).
    """
    cdef float one = 1.0, half = 0.5
    cdef float ln2_hi = 0.693359375, ln2_lo = -2.12194440e-4
    cdef float p0 = 7.0376836292e-2, p1 = -1.1514610310e-1, p2 = 1.1676998740e-1
    cdef float p3 = -1.2420140846e-1, p4 = 1.4249322787e-1, p5 = -1.6668057665e-1
    cdef float p6 = 2.0000714765e-1, p7 = -2.4999993993e-1, p8 = 3.3333331174e-1
    cdef int32_t bits, shifted
    cdef float m, z, y, k
    memcpy(&bits, &x, 4)
    shifted = bits - 0x3F3504F3  # exponent relative to sqrt(1/2)
    k = <float>(shifted >> 23)  # arithmetic shift: k < 0 below sqrt(1/2)
    bits = bits - (shifted & <int32_t>0xFF800000)
    memcpy(&m, &bits, 4)
    m = m - one
    z = m * m
    y = ((((((((p0 * m + p1) * m + p2) * m + p3) * m + p4) * m + p5) * m + p6) * m + p7) * m + p8) * m * z
    return m + (y + ln2_lo * k - half * z) + ln2_hi * k


# ---------------------------------------------------------------- segments

cdef int32_t _label(const uint8_t* mask, Py_ssize_t H, Py_ssize_t W, int32_t* comp,
                    Py_ssize_t* order, Py_ssize_t* starts) noexcept nogil:
    """8-connected components of `mask`, numbered from 1 in the order a row-major scan
    meets them; comp = +k on inner, -k on boundary pixels. The pixels of component k
    are order[starts[k-1]:starts[k]]. Returns the number of components.
    """
    cdef Py_ssize_t p, q, n, head, tail = 0, i, j, ii, jj
    cdef int32_t k = 0
    cdef bint boundary
    for p in range(H * W):
        if not mask[p] or comp[p] != 0:
            continue
        head = tail
        starts[k] = head
        k += 1
        comp[p] = k
        order[tail] = p
        tail += 1
        while head < tail:
            q = order[head]
            head += 1
            i = q // W
            j = q - i * W
            boundary = False
            for ii in range(i - 1 if i > 0 else 0, i + 2 if i + 2 <= H else H):
                for jj in range(j - 1 if j > 0 else 0, j + 2 if j + 2 <= W else W):
                    n = ii * W + jj
                    if not mask[n]:
                        boundary = True
                    elif comp[n] == 0:
                        comp[n] = k
                        order[tail] = n
                        tail += 1
            if boundary:
                comp[q] = -k
    starts[k] = tail
    return k


cdef int64_t _fill_other(const uint8_t* mask, const uint8_t* other, Py_ssize_t H, Py_ssize_t W,
                         Py_ssize_t start, int32_t label, int32_t* olab, Py_ssize_t* queue) noexcept nogil:
    """Labels the 8-connected component of (other and not mask) holding `start`; returns its size."""
    cdef Py_ssize_t q, n, head = 0, tail = 1, i, j, ii, jj
    olab[start] = label
    queue[0] = start
    while head < tail:
        q = queue[head]
        head += 1
        i = q // W
        j = q - i * W
        for ii in range(i - 1 if i > 0 else 0, i + 2 if i + 2 <= H else H):
            for jj in range(j - 1 if j > 0 else 0, j + 2 if j + 2 <= W else W):
                n = ii * W + jj
                if other[n] and not mask[n] and olab[n] == 0:
                    olab[n] = label
                    queue[tail] = n
                    tail += 1
    return tail


cdef inline uint8_t _argmax(const float* probs, Py_ssize_t C, Py_ssize_t plane, Py_ssize_t p) noexcept nogil:
    """First class of maximal probability at flat pixel p (as numpy's argmax)."""
    cdef Py_ssize_t c, best = 0
    cdef float top = probs[p]
    for c in range(1, C):
        if probs[c * plane + p] > top:
            top = probs[c * plane + p]
            best = c
    return <uint8_t>best


cdef void _pixels(const float* probs, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W,
                  const uint8_t* other, const int32_t* comp, bint predicted,
                  int64_t* counts, double* sums, double* cprob, int64_t* classes) noexcept nogil:
    """One row-major pass over the image, accumulating at segment pixels the sums over own pixels.

    predicted: segments of the prediction (heat maps E, D, V); else ground-truth
    segments (`classes` counts the argmax classes of the segment's pixels).
    """
    cdef Py_ssize_t plane = H * W, i, j, p, c, k, slot
    cdef int32_t lab
    cdef float x, top, second, e, d, v, eps = 1.1920929e-07
    cdef float log_inv_c = <float>log(1.0 / C)
    cdef uint8_t best
    cdef bint bd
    cdef int64_t* cnt
    cdef double* s
    for i in range(H):
        for j in range(W):
            p = i * W + j
            lab = comp[p]
            if lab == 0:
                continue
            bd = lab < 0
            k = -lab - 1 if bd else lab - 1
            cnt = counts + k * N_COUNTS
            s = sums + k * N_SUMS
            if cnt[N_S] == 0:
                cnt[N_FIRST] = p
            cnt[N_S] += 1
            cnt[N_BD] += bd
            cnt[N_I] += other[p] != 0
            s[F_ROW] += i
            s[F_COL] += j

            top = probs[p]
            second = -1.0
            best = 0
            e = 0
            for c in range(C):
                x = probs[c * plane + p]
                cprob[k * C + c] += x
                if predicted:
                    e += x * _log(x + eps)
                if c == 0:
                    continue
                if x > top:
                    second = top
                    top = x
                    best = <uint8_t>c
                elif x > second:
                    second = x
            if not predicted:
                classes[k * C + best] += 1
                continue
            e = e / log_inv_c
            v = 1 - top
            d = v + second
            slot = F_HEAT + (2 if bd else 0)
            s[slot] += e
            s[slot + 1] += <double>e * e
            s[slot + N_HEAT_SUMS] += d
            s[slot + N_HEAT_SUMS + 1] += <double>d * d
            s[slot + 2 * N_HEAT_SUMS] += v
            s[slot + 2 * N_HEAT_SUMS + 1] += <double>v * v


cdef void _outside(const float* probs, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W,
                   const uint8_t* mask, const uint8_t* other, const int32_t* comp,
                   const Py_ssize_t* order, const Py_ssize_t* starts, int32_t n_segments, bint predicted,
                   int32_t* olab, int64_t* osize, int32_t* ostamp, Py_ssize_t* oqueue, uint8_t* classes_cache,
                   int64_t* counts, int64_t* classes) noexcept nogil:
    """Per segment, over its boundary pixels' outside neighbours: the neighbour pairs,
    their argmax classes (predicted segments: ndist), and the other-mask components
    they touch (adjusted IoU), each component counted once per segment.
    """
    cdef Py_ssize_t plane = H * W, t, q, i, j, ii, jj, n, k
    cdef int32_t n_other = 0, ol
    cdef uint8_t nb
    cdef int64_t* cnt
    for k in range(n_segments):
        cnt = counts + k * N_COUNTS
        for t in range(starts[k], starts[k + 1]):
            q = order[t]
            if comp[q] > 0:
                continue
            i = q // W
            j = q - i * W
            for ii in range(i - 1 if i > 0 else 0, i + 2 if i + 2 <= H else H):
                for jj in range(j - 1 if j > 0 else 0, j + 2 if j + 2 <= W else W):
                    n = ii * W + jj
                    if mask[n]:
                        continue
                    cnt[N_PAIRS] += 1
                    if predicted:
                        nb = classes_cache[n]
                        if nb == NO_CLASS:
                            nb = _argmax(probs, C, plane, n)
                            classes_cache[n] = nb
                        classes[k * C + nb] += 1
                    if not other[n]:
                        continue
                    ol = olab[n]
                    if ol == 0:
                        n_other += 1
                        ol = n_other
                        osize[ol] = _fill_other(mask, other, H, W, n, ol, olab, oqueue)
                    if ostamp[ol] != k + 1:
                        ostamp[ol] = k + 1
                        cnt[N_G] += osize[ol]


def _walk(const float[:, :, ::1] probs, const uint8_t[:, ::1] mask, const uint8_t[:, ::1] other, bint predicted):
    """Labels the segments of `mask` and returns (components, counts, sums, cprob sums, class counts)."""
    cdef Py_ssize_t C = probs.shape[0], H = probs.shape[1], W = probs.shape[2]
    mask_np, other_np = np.asarray(mask), np.asarray(other)
    n_mask = int(np.count_nonzero(mask_np))
    n_outside = int(np.count_nonzero(other_np)) - int(np.count_nonzero(mask_np & other_np))
    components = np.zeros((H, W), np.int32)
    cdef int32_t[:, ::1] comp = components
    cdef Py_ssize_t[::1] order = np.empty(n_mask + 1, np.intp), starts = np.empty(n_mask + 1, np.intp)
    cdef int32_t n
    with nogil:
        n = _label(&mask[0, 0], H, W, &comp[0, 0], &order[0], &starts[0])

    counts_np = np.zeros((n, N_COUNTS), np.int64)
    sums_np = np.zeros((n, N_SUMS), np.float64)
    cprob_np = np.zeros((n, C), np.float64)
    classes_np = np.zeros((n, C), np.int64)
    if n == 0:
        return components, counts_np, sums_np, cprob_np, classes_np
    cdef int64_t[:, ::1] counts = counts_np, classes = classes_np
    cdef double[:, ::1] sums = sums_np, cprob = cprob_np
    # components of (other and not mask), labelled when a segment first touches them
    cdef int32_t[:, ::1] olab = np.zeros((H, W), np.int32)
    cdef int64_t[::1] osize = np.zeros(n_outside + 1, np.int64)
    cdef int32_t[::1] ostamp = np.zeros(n_outside + 1, np.int32)
    cdef Py_ssize_t[::1] oqueue = np.empty(n_outside + 1, np.intp)
    cdef uint8_t[:, ::1] cache = np.full((H, W), NO_CLASS, np.uint8) if predicted else np.zeros((1, 1), np.uint8)
    with nogil:
        _pixels(&probs[0, 0, 0], C, H, W, &other[0, 0], &comp[0, 0], predicted,
                &counts[0, 0], &sums[0, 0], &cprob[0, 0], &classes[0, 0])
        _outside(&probs[0, 0, 0], C, H, W, &mask[0, 0], &other[0, 0], &comp[0, 0], &order[0], &starts[0], n,
                 predicted, &olab[0, 0], &osize[0], &ostamp[0], &oqueue[0], &cache[0, 0],
                 &counts[0, 0], &classes[0, 0])
    return components, counts_np, sums_np, cprob_np, classes_np


# ---------------------------------------------------------------- inputs

def _as_probs(probs):
    probs = np.ascontiguousarray(probs, dtype=np.float32)
    if probs.ndim != 3 or min(probs.shape) == 0:
        raise ValueError(f"probs must be a (C, H, W) array of softmax probabilities, got shape {probs.shape}")
    if not 2 <= probs.shape[0] <= NO_CLASS:
        raise ValueError(f"probs must have between 2 and {NO_CLASS} classes on axis 0, got {probs.shape[0]}")
    return probs


def _as_map(name, array, shape):
    array = np.asarray(array)
    if array.shape != shape:
        raise ValueError(f"{name} must have the (H, W) shape {shape} of probs, got {array.shape}")
    if array.dtype != np.uint8:
        if array.dtype != bool and not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"{name} must hold integers 0..255, got dtype {array.dtype}")
        if array.size and (array.min() < 0 or array.max() > 255):
            raise ValueError(f"{name} must hold integers 0..255, got values in [{array.min()}, {array.max()}]")
    return np.ascontiguousarray(array, dtype=np.uint8)


def _masks(probs, ood_mask, gt_train, ood_index):
    """(probs, seg, gt): seg = OoD prediction without void pixels, gt = ground-truth OoD pixels."""
    probs = _as_probs(probs)
    shape = probs.shape[1:]
    ood_mask = _as_map("ood_mask", ood_mask, shape)
    gt_train = _as_map("gt_train", gt_train, shape)
    if not 0 <= int(ood_index) <= 254:
        raise ValueError(f"ood_index must be a train id in 0..254 (255 is void), got {ood_index}")
    seg = ((ood_mask != 0) & (gt_train != 255)).view(np.uint8)
    gt = (gt_train == int(ood_index)).view(np.uint8)
    return probs, seg, gt


# ---------------------------------------------------------------- metrics

def _means(total, n):
    """total / n, 0 where n == 0."""
    return np.divide(total, n, out=np.zeros(len(n)), where=n > 0)


def _common(counts, sums):
    """S, S_in, S_bd, intersection, adjusted IoU, mean row and column of every segment."""
    S, S_bd, I = counts[:, N_S], counts[:, N_BD], counts[:, N_I]
    iou = I / (S + counts[:, N_G])  # S >= 1: no division by zero, and I = 0 gives 0.0
    return S, S - S_bd, S_bd, I, iou, sums[:, F_ROW] / S, sums[:, F_COL] / S


def compute_metrics_components(probs, gt_train, ood_mask, ood_index):
    """Metrics of the predicted OoD segments (docs/METHOD.md §4a) and their components map.

    probs float (C, H, W) softmax; gt_train uint8 (H, W) train ids (255 void);
    ood_mask 0/1 (H, W) predicted OoD pixels; ood_index the OoD train id.
    Returns (metrics, components), see the module docstring.
    """
    probs, seg, gt = _masks(probs, ood_mask, gt_train, ood_index)
    components, counts, sums, cprob, neighbours = _walk(probs, seg, gt, True)
    S, S_in, S_bd, I, iou, mean_x, mean_y = _common(counts, sums)
    per_bd = np.maximum(S_bd, 1)  # a segment filling the image has no boundary: see the module docstring
    S_rel, S_rel_in = S / per_bd, S_in / per_bd
    metrics = {"iou": iou, "iou0": (I == 0).astype(np.int64), "prc": np.zeros(len(S), np.int64),
               "mean_x": mean_x, "mean_y": mean_y}
    for m, name in enumerate(HEAT_MAPS):
        base = F_HEAT + m * N_HEAT_SUMS
        sum_in, sq_in, sum_bd, sq_bd = (sums[:, base + t] for t in range(N_HEAT_SUMS))
        h, h_in, h_bd = (sum_in + sum_bd) / S, _means(sum_in, S_in), _means(sum_bd, S_bd)
        var = (sq_in + sq_bd) / S - h ** 2
        var_in = _means(sq_in, S_in) - h_in ** 2
        var_bd = _means(sq_bd, S_bd) - h_bd ** 2
        metrics.update({name: h, f"{name}_in": h_in, f"{name}_bd": h_bd,
                        f"{name}_rel": h * S_rel, f"{name}_rel_in": h_in * S_rel_in,
                        f"{name}_var": var, f"{name}_var_in": var_in, f"{name}_var_bd": var_bd,
                        f"{name}_var_rel": var * S_rel, f"{name}_var_rel_in": var_in * S_rel_in})
    metrics.update({"S": S, "S_in": S_in, "S_bd": S_bd, "S_rel": S_rel, "S_rel_in": S_rel_in})
    pairs = np.maximum(counts[:, N_PAIRS], 1)
    for c in range(probs.shape[0]):
        metrics[f"cprob{c}"] = cprob[:, c] / S
        metrics[f"ndist{c}"] = neighbours[:, c] / pairs
    return metrics, components


def compute_metrics_mask(probs, mask, gt_train, gt_label, ood_index):
    """Metrics of the ground-truth OoD segments (docs/METHOD.md §4b) and their components map.

    mask 0/1 (H, W) predicted OoD pixels (void is removed from it); gt_label uint8
    (H, W) label ids, read at each segment's first pixel. Other arguments and the
    return value as compute_metrics_components.
    """
    probs, seg, gt = _masks(probs, mask, gt_train, ood_index)
    gt_label = _as_map("gt_label", gt_label, probs.shape[1:])
    components, counts, sums, cprob, own = _walk(probs, gt, seg, False)
    S, S_in, S_bd, I, iou, mean_x, mean_y = _common(counts, sums)
    metrics = {"iou": iou, "iou0": (I == 0).astype(np.int64), "rec": I / S,
               "train_class": np.full(len(S), 255, np.int64),
               "label_class": gt_label.ravel()[counts[:, N_FIRST]].astype(np.int64),
               "mean_x": mean_x, "mean_y": mean_y, "S": S, "S_in": S_in, "S_bd": S_bd}
    for c in range(probs.shape[0]):
        metrics[f"S_{c}"] = own[:, c]
        metrics[f"cprob{c}"] = cprob[:, c] / S
    return metrics, components
