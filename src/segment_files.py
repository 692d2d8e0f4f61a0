"""The segment search's files (docs/METHOD.md §5), checked when they are read back.

Per image and kind of segment (predicted, ground truth), `paths.metrics_file` holds the metrics:
one 1-D int64 or float64 array per metric, one entry per segment, in the order in which the
metaseg functions return them (the order of the .npz entries keeps it); `paths.components_file`
holds the components map as its runs along rows: in the row-major flattened map, each run of equal
non-zero values is one entry of `starts` (int64 flat index of its first pixel), `lengths` (int64)
and `values` (int32), with `shape` (int64 (2,)) the map's (H, W); compressed. Every pixel outside
the runs is 0. A map is mostly zeros and its segments are blobs: the 186 segments of the
1024x2048 benchmark image are 6751 runs, 21 kB, written and read back in about 1 ms each (as one
deflated int32 array: 24 kB, 25 ms to write and 16 ms to inflate).
"""
import numpy as np

from src.atomic import read_npz, unusable, write_npz

RERUN = "meta_classification.py -prepare -segment (with the same settings)"
# Keys every metrics file has, of predicted and of ground-truth segments alike.
COMMON_METRICS = ("iou", "iou0", "mean_x", "mean_y", "S", "S_in", "S_bd")
METRIC_DTYPES = (np.dtype(np.int64), np.dtype(np.float64))
METRICS = f"segment metrics (1-D int64 or float64 arrays of one length, among them {', '.join(COMMON_METRICS)})"
COMPONENTS = ("a components map (its runs: int64 shape (2,), int64 starts and lengths, int32 values, "
              "in increasing order, inside the map)")
RUNS = {"shape": np.int64, "starts": np.int64, "lengths": np.int64, "values": np.int32}


def write_metrics(path, metrics):
    write_npz(path, metrics)


def write_components(path, components):
    write_npz(path, components_runs(components), compressed=True)


def components_runs(components) -> dict:
    """The runs of an int32 (H, W) components map (module doc)."""
    flat = np.ascontiguousarray(components, dtype=np.int32).ravel()
    starts = np.r_[0, np.flatnonzero(flat[1:] != flat[:-1]) + 1]
    lengths = np.diff(np.r_[starts, flat.size])
    values = flat[starts]
    kept = values != 0
    return {"shape": np.array(np.shape(components), np.int64), "starts": starts[kept], "lengths": lengths[kept],
            "values": values[kept]}


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
    runs = read_npz(path, COMPONENTS, RERUN)
    problem = _runs_problem(runs)
    if problem:
        raise unusable(path, problem, COMPONENTS, RERUN)
    return components_map(runs)


def components_map(runs) -> np.ndarray:
    """The int32 (H, W) components map of its runs (components_runs)."""
    starts, lengths = runs["starts"], runs["lengths"]
    flat = np.zeros(int(np.prod(runs["shape"])), np.int32)
    # position of each run pixel: its run's start plus its offset in the run
    before = np.cumsum(lengths) - lengths
    flat[np.repeat(starts - before, lengths) + np.arange(lengths.sum())] = np.repeat(runs["values"], lengths)
    return flat.reshape(runs["shape"])


def _runs_problem(runs):
    """What makes `runs` no runs of a components map; None if nothing."""
    if sorted(runs) != sorted(RUNS) or any(runs[k].dtype != t or runs[k].ndim != 1 for k, t in RUNS.items()):
        return f"found {_described(runs)}"
    shape, starts, lengths = runs["shape"], runs["starts"], runs["lengths"]
    if shape.size != 2 or (shape < 0).any() or not starts.size == lengths.size == runs["values"].size:
        return f"found {_described(runs, listed=4)}"
    ends = starts + lengths
    if starts.size and ((lengths < 1).any() or starts[0] < 0 or (starts[1:] < ends[:-1]).any()
                        or ends[-1] > np.prod(shape) or (runs["values"] == 0).any()):
        return "runs that overlap, leave the map, are empty or of value 0"
    return None


def _described(arrays, listed=3):
    """E.g. `S_in float32 (4, 2), iou int64 (3,)`, the first `listed` arrays, for a message."""
    shown = [f"{k} {v.dtype} {v.shape}" for k, v in list(arrays.items())[:listed]]
    if len(arrays) > listed:
        shown.append(f"{len(arrays) - listed} more")
    return ", ".join(shown) or "no array"
