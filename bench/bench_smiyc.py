"""Speed and memory of the SegmentMeIfYouCan metrics (src/smiyc.py) over a data set of frames.

    python bench/bench_smiyc.py [--frames 50] [--distinct 10] [--height 1024] [--width 2048]
                                [--repeats 3] [--json]

Frames in the style of bench/reference/gen_big.py (seeded): smooth float32 scores in [0, 1]
with 14 ground-truth objects, 11 of them detected by a shifted blob, 30 false blobs, and the
bottom 8 % of the rows void; built at a quarter of the resolution and upsampled (bilinear
scores, nearest labels), which keeps generating them cheap. `--distinct` frames are generated
and cycled up to `--frames`, so that the inputs take little memory themselves. Timed: one
smiyc_metrics call, anomaly track, over a list (read twice) and over a generator (one pass and
the compact cache), median of --repeats, per frame. Memory, in a fresh process per input kind:
numpy's allocations (tracemalloc) and the peak resident memory above the start (bench/common.py).
"""
import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import child_memory_mb, expected, figure, median_seconds, peak_extra_mb, print_json  # noqa: E402
from src.smiyc import smiyc_metrics  # noqa: E402

SCALE = 4  # frames are built at 1 / SCALE of the resolution


def synthetic_frame(seed, height, width):
    """(float32 scores in [0, 1], uint8 labels 0 / 1 / 255) of one frame (module doc)."""
    rng = np.random.default_rng(seed)
    h, w = height // SCALE, width // SCALE
    s = w / (2048 / SCALE)  # lengths as gen_big.py's at 2048 px wide
    rows, cols = np.ogrid[:h, :w]

    def ellipse(cy, cx, ry, rx):
        return ((rows - cy) / max(ry, 1)) ** 2 + ((cols - cx) / max(rx, 1)) ** 2 <= 1

    objects, blobs = np.zeros((h, w), bool), np.zeros((h, w), bool)
    for k in range(14):
        cy, cx = rng.uniform(0.35 * h, 0.9 * h), rng.uniform(0.05 * w, 0.95 * w)
        ry, rx = rng.uniform(2, 15, 2) * s
        objects |= ellipse(cy, cx, ry, rx)
        if k < 11:
            blobs |= ellipse(cy + rng.uniform(-1.5, 1.5) * s, cx + rng.uniform(-1.5, 1.5) * s, ry, rx)
    for _ in range(30):
        blobs |= ellipse(rng.uniform(0, h), rng.uniform(0, w), *rng.uniform(1.25, 11, 2) * s)
    background = ndimage.gaussian_filter(rng.standard_normal((h, w)), 3 * s)
    background = 0.3 + 0.1 * background / background.std()
    soft_blobs = np.clip(2 * ndimage.gaussian_filter(blobs.astype(np.float64), 0.75 * s), 0, 1)
    small_scores = np.clip(np.maximum(background, 0.95 * soft_blobs), 0, 1)
    scores = ndimage.zoom(small_scores, SCALE, order=1).astype(np.float32)
    labels = np.repeat(np.repeat(objects.astype(np.uint8), SCALE, axis=0), SCALE, axis=1)
    labels[height - round(0.08 * height):] = 255
    return scores, labels


def data_set(args):
    """(scores, labels): lists of args.frames frames, args.distinct different ones cycled."""
    pool = [synthetic_frame(seed, args.height, args.width) for seed in range(args.distinct)]
    frames = [pool[i % len(pool)] for i in range(args.frames)]
    return [s for s, _ in frames], [label for _, label in frames]


def calls(scores, labels):
    """The timed calls by input kind."""
    return {
        "list": lambda: smiyc_metrics(scores, labels, "anomaly"),
        "generator": lambda: smiyc_metrics((s for s in scores), (label for label in labels), "anomaly"),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--distinct", type=int, default=10, help="different frames among them")
    parser.add_argument("--height", type=int, default=1024)
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per input kind (median)")
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON line, last")
    parser.add_argument("--memory-of", help=argparse.SUPPRESS)  # internal: measure one input kind's memory
    args = parser.parse_args()
    scores, labels = data_set(args)
    if args.memory_of:
        alloc, rss = peak_extra_mb(calls(scores, labels)[args.memory_of])
        print(f"{alloc:.1f}", "n/a" if rss is None else f"{rss:.1f}")
        return

    got = smiyc_metrics(scores, labels, "anomaly")
    context = (f"{args.frames} frames of {args.height}x{args.width} ({args.distinct} distinct), anomaly track: "
               f"AP {got['ap']:.3f}, best F1 {got['best_f1']:.3f} at {got['best_f1_threshold']:.4f}, "
               f"sIoU gt {got['siou_gt']:.3f}, PPV {got['ppv']:.3f}, mean F1 {got['mean_f1']:.3f}; "
               f"median of {args.repeats}")
    print(context + "\n")
    print(f"{'input':<10}{'s per frame':>12}{'target':>9}{'alloc MB':>10}{'peak RSS MB':>13}")
    figures = []
    for kind, call in calls(scores, labels).items():
        per_frame = median_seconds(call, args.repeats) / args.frames
        alloc, rss = child_memory_mb([sys.executable, __file__, "--frames", str(args.frames),
                                      "--distinct", str(args.distinct), "--height", str(args.height),
                                      "--width", str(args.width), "--memory-of", kind])
        name = f"seconds per frame, {kind}"
        print(f"{kind:<10}{per_frame:>12.4f}{expected('smiyc', name).target_text():>9}{alloc:>10}{rss:>13}")
        figures += [figure(name, per_frame, "s"), figure(f"alloc, {kind}", alloc, "MB")]
        figures += [] if rss == "n/a" else [figure(f"peak RSS, {kind}", rss, "MB")]
    if args.json:
        print_json("smiyc", figures, context)


if __name__ == "__main__":
    main()
