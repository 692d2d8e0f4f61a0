"""Speed of the evaluation metrics: per-image score + histograms, and metrics from histograms.

    python bench/bench_evaluation.py [--repeats 7] [--bins 10000] [--json]

Per image: a 19 x 1024 x 2048 softmax of smooth random logits (seeded) and a Fishyscapes-like
ground truth (in-distribution everywhere but OoD blobs and a void strip at the bottom: the
most pixels to histogram); timed: each score, the histograms, and the entropy + both histograms
(paper 100 bins, exact `--bins`) of one image. Final metrics: from histograms of 1e9
in-distribution and 1e7 OoD pixels with the golden case s01's distributions.
Prints median times (ms) and the peak memory the metrics allocate; targets in bench/common.py.
"""
import argparse
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import torch
from scipy import stats

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import MB, expected, figure, median_seconds, print_json  # noqa: E402
from src.pixel_metrics import PAPER_BINS, ScoreHistogram, exact_metrics, paper_metrics, pixel_scores  # noqa: E402
from src.scores import SCORE_RANGES, score_map  # noqa: E402

HEIGHT, WIDTH, CLASSES = 1024, 2048, 19
IN, OUT, VOID = 1, 2, 255


def synthetic_image(seed=0):
    """(probs, logits) float32 (19, H, W) from smooth random logits, and a gt (H, W) uint8."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.randn(1, CLASSES, HEIGHT // 32, WIDTH // 32, generator=gen) * 4.0
    logits = torch.nn.functional.interpolate(coarse, size=(HEIGHT, WIDTH), mode="bicubic", align_corners=False)[0]
    probs = torch.softmax(logits, dim=0)
    rows, cols = np.mgrid[:HEIGHT, :WIDTH]
    gt = np.full((HEIGHT, WIDTH), IN, np.uint8)
    gt[-HEIGHT // 8:] = VOID
    rng = np.random.default_rng(seed)
    for r, c, radius in zip(rng.integers(500, 850, 6), rng.integers(400, 1600, 6), rng.integers(10, 60, 6)):
        gt[(rows - r) ** 2 + (cols - c) ** 2 < radius ** 2] = OUT
    return probs.numpy(), logits.numpy(), gt


def median_ms(function, repeats):
    return 1e3 * median_seconds(function, repeats)


def golden_like_counts(bins, n_in=10**9, n_out=10**7):
    """Counts of in ~ exp(-x / 0.08) (truncated to [0, 1]) and out ~ Beta(4, 3) in `bins` bins."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    cdf_in = stats.truncexpon(b=1 / 0.08, scale=0.08).cdf(edges)
    cdf_out = stats.beta(4, 3).cdf(edges)
    return np.round(np.diff(cdf_in) * n_in).astype(np.int64), np.round(np.diff(cdf_out) * n_out).astype(np.int64)


def metrics_figures(metrics, counts, repeats):
    """(median ms, peak MB) of computing the metrics from the counts."""
    ms = median_ms(lambda: metrics(*counts), repeats)
    tracemalloc.start()
    metrics(*counts)
    peak = tracemalloc.get_traced_memory()[1] / MB
    tracemalloc.stop()
    return ms, peak


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--bins", type=int, default=10_000, help="bins of the exact protocol")
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON line, last")
    args = parser.parse_args()

    probs, logits, gt = synthetic_image()
    context = (f"image 19x{HEIGHT}x{WIDTH}, {np.count_nonzero(gt == IN)} in / {np.count_nonzero(gt == OUT)} OoD "
               f"pixels; exact protocol {args.bins} bins; torch threads {torch.get_num_threads()}, "
               f"median of {args.repeats}")
    print(context)
    figures = [figure(f"score {name}", median_ms(lambda: score_map(name, probs, logits), args.repeats), "ms")
               for name in SCORE_RANGES]
    entropy = score_map("entropy", probs)
    paper_hist, exact_hist = ScoreHistogram(PAPER_BINS), ScoreHistogram(args.bins)
    adaptive_hist = ScoreHistogram(args.bins, value_range=None)
    energy = score_map("energy", logits=logits)
    figures += [
        figure("histograms, paper", median_ms(lambda: paper_hist.update(entropy, gt, IN, OUT), args.repeats), "ms"),
        figure("histograms, exact", median_ms(lambda: exact_hist.update(entropy, gt, IN, OUT), args.repeats), "ms"),
        figure("histograms, adaptive (energy)",
               median_ms(lambda: adaptive_hist.update(energy, gt, IN, OUT), args.repeats), "ms"),
    ]

    def per_image():
        values = pixel_scores(score_map("entropy", probs), gt, IN, OUT)
        paper_hist.add(*values)
        exact_hist.add(*values)

    figures.append(figure("entropy + both histograms, per image", median_ms(per_image, args.repeats), "ms"))
    for label, metrics, bins in [("paper metrics", paper_metrics, PAPER_BINS),
                                 ("exact metrics", exact_metrics, args.bins),
                                 ("exact metrics, 100000 bins", exact_metrics, 100_000)]:
        ms, peak = metrics_figures(metrics, golden_like_counts(bins), args.repeats)
        figures += [figure(label, ms, "ms"), figure(f"{label} peak", peak, "MB")]

    width = max(len(f["name"]) for f in figures)
    print(f"{'stage':<{width}}  {'value':>8}  target")
    for f in figures:
        target = expected("evaluation", f["name"]).target_text()
        print(f"{f['name']:<{width}}  {f['value']:8.1f} {f['unit']:<2}  {target}")
    if args.json:
        print_json("evaluation", figures, context)


if __name__ == "__main__":
    main()
