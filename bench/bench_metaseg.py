"""Speed and memory of the MetaSeg metrics and of the per-image segment search.

    python bench/bench_metaseg.py [--input big.npz] [--repeats 5] [--images 4] [--workers 2] [--json]

Without --input it generates the 1024x2048 input on which the reference was timed
(bench/reference/gen_big.py 1024 2048 7). Memory is measured in a fresh process per call, twice: numpy's allocations
(tracemalloc; every buffer of the extension is a numpy array; an upper bound, as zero
pages never touched are counted) and the peak resident memory above the resident memory
before the call (Linux VmHWM, reset through /proc/self/clear_refs; glibc's mmap threshold
is fixed so that freed buffers are given back and not silently reused).
"""
import argparse
import dataclasses
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(REPO))

from bench.common import child_memory_mb, expected, figure, median_seconds, peak_extra_mb, print_json  # noqa: E402
from src import paths  # noqa: E402
from src.metaseg import compute_metrics_components, compute_metrics_mask  # noqa: E402
from src.scores import entropy_mask  # noqa: E402
from src.probs_file import write_probs_file  # noqa: E402
from src.segment_search import run_segment_search  # noqa: E402
from src.settings import default_config  # noqa: E402


def big_input_file(args, folder):
    if args.input:
        return args.input
    out = Path(folder) / "big.npz"
    subprocess.run([sys.executable, "gen_big.py", "1024", "2048", "7", str(out)], cwd=REPO / "bench" / "reference",
                   check=True, stdout=subprocess.DEVNULL)
    return str(out)


def metric_calls(data):
    """The timed calls on the input `data`, by name."""
    probs, gt_train, gt_label = data["probs"], data["gt_train"], data["gt_label"]
    ood_index = int(data["ood_index"])
    mask = entropy_mask(probs, 0.7)
    calls = {
        "entropy_mask": lambda: entropy_mask(probs, 0.7),
        "compute_metrics_components": lambda: compute_metrics_components(probs, gt_train, mask, ood_index),
        "compute_metrics_mask": lambda: compute_metrics_mask(probs, mask, gt_train, gt_label, ood_index),
    }
    calls["both metric calls"] = lambda: (calls["compute_metrics_components"](), calls["compute_metrics_mask"]())
    return calls


def measured_memory(input_file, name):
    """peak_extra_mb of one call, in a fresh process: "<alloc MB> <peak RSS MB or n/a>"."""
    return child_memory_mb([sys.executable, __file__, "--input", input_file, "--memory-of", name])


def write_probs_files(data, cfg, epoch, n_images):
    for i in range(n_images):
        write_probs_file(paths.probs_file(cfg, epoch, i), data["probs"], data["gt_train"], data["gt_label"],
                         f"bench/{i}.png")
    os.sync()  # the write-back of these files must not fall into the timed run


def search_seconds_per_image(data, folder, n_images, workers):
    io_root = os.path.join(folder, f"workers_{workers}")
    cfg = dataclasses.replace(default_config(), io_root=io_root, VALSET="Fishyscapes", segment_workers=workers)
    write_probs_files(data, cfg, 1, n_images)
    start = time.perf_counter()
    processed, _ = run_segment_search(cfg, 1, int(data["ood_index"]))
    seconds = time.perf_counter() - start
    assert processed == n_images
    for i in range(n_images):
        os.remove(paths.probs_file(cfg, 1, i))
    return seconds / n_images


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", help="an .npz from gen_big.py (default: generate 1024x2048, seed 7)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per call (median)")
    parser.add_argument("--images", type=int, default=4, help="images of the segment-search run")
    parser.add_argument("--workers", type=int, default=2, help="segment_workers of the segment-search run")
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON line, last")
    parser.add_argument("--memory-of", help=argparse.SUPPRESS)  # internal: measure one call's memory
    args = parser.parse_args()
    if args.memory_of:
        alloc, rss = peak_extra_mb(metric_calls(dict(np.load(args.input)))[args.memory_of])
        print(f"{alloc:.1f}", "n/a" if rss is None else f"{rss:.1f}")
        return

    with tempfile.TemporaryDirectory(prefix="bench_metaseg_") as folder:
        input_file = big_input_file(args, folder)
        data = dict(np.load(input_file))
        calls = metric_calls(data)
        n_pred = len(calls["compute_metrics_components"]()[0]["S"])
        n_gt = len(calls["compute_metrics_mask"]()[0]["S"])
        share = 100 * entropy_mask(data["probs"], 0.7).mean()
        context = (f"input {data['probs'].shape} {data['probs'].dtype}, mask {share:.2f} % of the pixels, "
                   f"{n_pred} predicted / {n_gt} ground-truth segments; {os.cpu_count()} CPUs")
        figures = [figure("predicted segments", n_pred, ""), figure("ground-truth segments", n_gt, ""),
                   figure("mask share", share, "%")]
        print(context + "\n")
        print(f"{'call':<28}{'median s':>10}{'reference s':>13}{'speed-up':>10}"
              f"{'alloc MB':>10}{'peak RSS MB':>13}")
        for name, fn in calls.items():
            seconds = median_seconds(fn, args.repeats)
            alloc, rss = measured_memory(input_file, name)
            reference = expected("metaseg", name).reference
            print(f"{name:<28}{seconds:>10.4f}{reference:>13.2f}{reference / seconds:>9.0f}x"
                  f"{alloc:>10}{rss:>13}")
            figures += [figure(name, seconds, "s"), figure(f"{name} alloc", alloc, "MB")]
            figures += [] if rss == "n/a" else [figure(f"{name} peak RSS", rss, "MB")]
        print(f"(reference: {expected('metaseg', 'both metric calls alloc').reference:g} MB "
              f"inside the two metric calls)\n")

        for workers in sorted({1, args.workers}):
            per_image = search_seconds_per_image(data, folder, args.images, workers)
            print(f"segment search (read hdf5, entropy mask, both calls, 4 .npz files): "
                  f"{per_image:.3f} s per image over {args.images} images, {workers} worker(s)")
            figures.append(figure(f"segment search, {workers} worker{'s' * (workers > 1)}", per_image, "s"))
    if args.json:
        print_json("metaseg", figures, context)


if __name__ == "__main__":
    main()
