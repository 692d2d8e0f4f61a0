"""What the bench scripts share: timing, figures as one JSON line, and the issues' references and targets.

A figure is {"name", "value", "unit"}; `print_json` writes a script's figures as the last line of
its stdout, which bench/run_all.py reads. EXPECTED is the one place for the reference figures
(the reference implementation, bench/reference/README.md) and the targets the issues set.
"""
import json
import os
import statistics
import subprocess
import time
import tracemalloc
from typing import NamedTuple

MB = 1e6  # memory in decimal MB, the unit of the references and targets


class Expected(NamedTuple):
    reference: float = None
    target: float = None
    at_least: bool = False  # the target is a lower bound (a speed-up), else an upper bound

    def target_text(self):
        return "" if self.target is None else f"{'>=' if self.at_least else '<='} {self.target:g}"

    def met(self, value):
        """True/False against the target, None without one."""
        if self.target is None:
            return None
        return value >= self.target if self.at_least else value <= self.target


# (benchmark, figure name) -> Expected; a benchmark is a script's name without bench_ and .py
EXPECTED = {
    ("loss", "dense time"): Expected(reference=0.96),
    ("loss", "dense peak with logits+grad"): Expected(reference=1230),  # the reference's whole peak
    ("loss", "time dense / ours"): Expected(target=3, at_least=True),
    ("loss", "memory dense / ours"): Expected(target=2, at_least=True),
    ("metaseg", "predicted segments"): Expected(reference=186),
    ("metaseg", "ground-truth segments"): Expected(reference=12),
    ("metaseg", "mask share"): Expected(reference=4.8),
    ("metaseg", "entropy_mask"): Expected(reference=0.3),
    ("metaseg", "compute_metrics_components"): Expected(reference=4.5),
    ("metaseg", "compute_metrics_mask"): Expected(reference=3.06),
    ("metaseg", "both metric calls"): Expected(reference=7.56, target=0.25),
    ("metaseg", "both metric calls alloc"): Expected(reference=560, target=160),
    ("metaseg", "both metric calls peak RSS"): Expected(reference=560, target=160),
    ("metaseg", "segment search, 1 worker"): Expected(target=0.6),
    ("metaseg", "segment search, 2 workers"): Expected(target=0.6),
    ("evaluation", "score entropy"): Expected(reference=290),
    ("evaluation", "entropy + both histograms, per image"): Expected(target=150),
    ("evaluation", "paper metrics"): Expected(reference=20500, target=10),
    ("evaluation", "paper metrics peak"): Expected(reference=750),
    ("evaluation", "exact metrics"): Expected(target=10),
    ("evaluation", "exact metrics, 100000 bins"): Expected(target=10),
    ("pipeline", "compact path, per image"): Expected(target=0.25),
    ("smiyc", "seconds per frame, list"): Expected(target=0.1),
    ("smiyc", "seconds per frame, generator"): Expected(target=0.1),
}


def expected(benchmark, name):
    return EXPECTED.get((benchmark, name), Expected())


def median_seconds(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def figure(name, value, unit):
    return {"name": name, "value": float(value), "unit": unit}


def print_json(benchmark, figures, context=""):
    """The machine-readable result: one line, to be the last of stdout."""
    print(json.dumps({"benchmark": benchmark, "context": context, "figures": figures}), flush=True)


def child_stdout(command, **kwargs) -> str:
    """The stdout of `command` run in a subprocess; if it fails, an error that carries the
    child's stderr, which capturing the output would otherwise hide."""
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, command))} failed with exit status {done.returncode}; "
                           f"its stderr:\n{done.stderr}")
    return done.stdout


def _status_kb(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def peak_extra_mb(fn):
    """(tracemalloc peak, resident peak above the start) in MB of calling fn, after a first call
    that touches code and input pages; the second is None off Linux. tracemalloc sees numpy's
    buffers (an upper bound: zero pages never touched count); the resident peak is Linux VmHWM,
    reset through /proc/self/clear_refs."""
    fn()
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current resident size
    except OSError:
        return peak / MB, None
    before = _status_kb("VmRSS")
    fn()
    return peak / MB, (_status_kb("VmHWM") - before) * 1024 / MB


def child_memory_mb(command):
    """["<alloc MB>", "<peak RSS MB or n/a>"] that `command`, a script printing peak_extra_mb of
    one call, prints in a fresh process; glibc's mmap threshold is fixed so that freed buffers
    are given back and not silently reused."""
    return child_stdout(command, env=dict(os.environ, MALLOC_MMAP_THRESHOLD_=str(128 * 1024))).split()
