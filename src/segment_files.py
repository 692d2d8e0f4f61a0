"""The segment search's files (docs/METHOD.md §5), checked when they are read back.

Per image and kind of segment (predicted, ground truth), `paths.metrics_file` holds the metrics:
one 1-D int64 or float64 array per metric, one entry per segment, in the order in which the
metaseg functions return them (the order of the .npz entries keeps it); `paths.components_file`
holds the components map, one int32 (H, W) array `components`, compressed (it is mostly zeros: a
1024x2048 map of 8 MB takes some 25 kB, written in some 25 ms).
"""
import numpy as np

from src.atomic import read_npz, unusable, write_npz

RERUN = "meta_classification.py -segment (with the same settings)"
# Keys every metrics file has, of predicted and of ground-truth segments alike.
COMMON_METRICS = ("iou", "iou0", "mean_x", "mean_y", "S", "S_in", "S_bd")
METRIC_DTYPES = (np.dtype(np.int64), np.dtype(np.float64))
METRICS = f"segment metrics (1-D int64 or float64 arrays of one length, among them {', '.join(COMMON_METRICS)})"
COMPONENTS = "a components map (one int32 (H, W) array named components)"


def write_metrics(path, metrics):
    write_npz(path, metrics)


def write_components(path, components):
    write_npz(path, {"components": components}, compressed=True)


def read_metrics(path) -> dict:
    """The metrics at `path` (key -> 1-D array, in their stored order)."""
    metrics = read_npz(path, METRICS, RERUN)
    problem = _metrics_problem(metrics)
    if problem:
        raise unusable(path, problem, METRICS, RERUN)
    return metrics


def _metrics_problem(metrics):
    """What makes `metrics` no metrics of segments; None if nothing."""
    missing = [k for k in COMMON_METRICS if k not in metrics]
    if missing:
        return f"no {', '.join(missing)} (found {_described(metrics)})"
    odd = [k for k, v in metrics.items() if v.ndim != 1 or v.dtype not in METRIC_DTYPES]
    if odd:
        return f"found {_described({k: metrics[k] for k in odd})}"
    lengths = sorted({len(v) for v in metrics.values()})
    if len(lengths) > 1:
        return f"arrays of lengths {lengths}"
    return None


def read_components(path) -> np.ndarray:
    """The components map at `path`: int32 (H, W), +k inner and -k boundary pixels of segment k."""
    arrays = read_npz(path, COMPONENTS, RERUN)
    if list(arrays) != ["components"] or arrays["components"].dtype != np.int32 or arrays["components"].ndim != 2:
        raise unusable(path, f"found {_described(arrays)}", COMPONENTS, RERUN)
    return arrays["components"]


def _described(arrays, listed=3):
    """E.g. `S_in float32 (4, 2), iou int64 (3,)`, the first `listed` arrays, for a message."""
    shown = [f"{k} {v.dtype} {v.shape}" for k, v in list(arrays.items())[:listed]]
    if len(arrays) > listed:
        shown.append(f"{len(arrays) - listed} more")
    return ", ".join(shown) or "no array"
