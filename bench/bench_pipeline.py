"""Seconds per image of everything after the network, for the compact outputs and for probs files.

    python bench/bench_pipeline.py [--images 4] [--height 1024] [--width 2048] [--json]

The network is replaced by fixed logits, log p of the 1024x2048 benchmark input
(bench/reference/gen_big.py <height> <width> 7), fed to the stages' own per-image functions in the
order the pipeline calls them:
    prepare            image_outputs.write_image_outputs (softmax, then the compact outputs: segment
                       metrics of predicted and ground-truth segments, histogram shares, float16
                       score map, labels; or the probs file with --store_probs)
    segment search     run_segment_search over the set, per image (compact: it finds the files done)
    removal reads      the meta classifier's reading of an image: read_metrics, both components
                       maps and their FP/FN pass (the fits are per data set, not per image: left out)
    pixel histograms   image_outputs.image_histograms added to the set's histograms
    component metrics  evaluation.image_row (components maps, labels, component scores, the CSV row)
Each figure is the median over the images; the per-image total is their sum. Beside it: one plain
pass over the softmax (np.sum), the floor of anything that reads it, and what the compact
prepare stage spends on its parts. Files are read back from the page cache, as on a machine whose
memory holds them; probs files of a whole data set (160 MB each) would be read from disk.
"""
import argparse
import dataclasses
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(REPO))

from bench.common import expected, figure, median_seconds, print_json  # noqa: E402
from src import evaluation, image_outputs, paths  # noqa: E402
from src.component_metrics import ComponentAccumulator  # noqa: E402
from src.meta_classifier import uncovered_counts  # noqa: E402
from src.scores import normalized_entropy, threshold_mask  # noqa: E402
from src.segment_files import read_components, read_metrics  # noqa: E402
from src.segment_search import run_segment_search  # noqa: E402
from src.settings import default_config  # noqa: E402

STEPS = ("prepare", "segment search", "removal reads", "pixel histograms", "component metrics")
PATHS = {"compact": False, "probs": True}  # path -> store_probs


def big_input(folder, height, width):
    out = Path(folder) / "big.npz"
    subprocess.run([sys.executable, "gen_big.py", str(height), str(width), "7", str(out)],
                   cwd=REPO / "bench" / "reference", check=True, stdout=subprocess.DEVNULL)
    with np.load(out) as data:
        return {k: data[k] for k in ("probs", "gt_train", "gt_label")}, int(data["ood_index"])


def _timed(function):
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def _removal_reads(cfg, index):
    metrics = read_metrics(paths.metrics_file(cfg, 0, index))
    kept = [np.ones(len(metrics["S"]), bool)]
    uncovered_counts([read_components(paths.components_file(cfg, 0, index, gt=True))],
                     [read_components(paths.components_file(cfg, 0, index))], [kept, kept])


def _add_histograms(cfg, histograms, index):
    for protocol, share in image_outputs.image_histograms(cfg, 0, index).items():
        histograms[protocol].add_image(share)


def _image_row(cfg, index, accumulators):
    iou0 = read_metrics(paths.metrics_file(cfg, 0, index))["iou0"]
    evaluation.image_row(cfg, 0, index, np.ones(iou0.size, bool), iou0, *accumulators)


def step_seconds(cfg, data, logits, n_images, ood_index):
    """{step: median seconds per image} of one path, and the bytes it wrote per image."""
    times = {step: [] for step in STEPS}
    for i in range(n_images):
        times["prepare"].append(_timed(lambda: image_outputs.write_image_outputs(
            cfg, 0, i, logits, data["gt_train"], data["gt_label"], f"bench/{i}.png")))
    os.sync()  # the write-back of the files must not fall into the timed reads
    times["segment search"].append(_timed(lambda: run_segment_search(cfg, 0, ood_index)) / n_images)
    histograms, accumulators = image_outputs.run_histograms(cfg), (ComponentAccumulator(), ComponentAccumulator())
    for i in range(n_images):
        times["removal reads"].append(_timed(lambda: _removal_reads(cfg, i)))
        times["pixel histograms"].append(_timed(lambda: _add_histograms(cfg, histograms, i)))
        times["component metrics"].append(_timed(lambda: _image_row(cfg, i, accumulators)))
    written = sum(p.stat().st_size for p in Path(cfg.io_root).rglob("*") if p.is_file())
    return {step: statistics.median(values) for step, values in times.items()}, written / n_images


def prepare_parts(cfg, data, logits, repeats, ood_index):
    """Median seconds of the compact prepare stage's computations, by name."""
    probs = image_outputs.probabilities(logits)
    entropy = normalized_entropy(probs)
    mask = threshold_mask(entropy, cfg.entropy_threshold)
    parts = {
        "softmax": lambda: image_outputs.probabilities(logits),
        "entropy": lambda: normalized_entropy(probs),
        "segment metrics": lambda: image_outputs.segment_metrics(probs, mask, data["gt_train"], data["gt_label"],
                                                                 ood_index),
        "histogram shares": lambda: image_outputs.histogram_shares(cfg, entropy, data["gt_train"]),
    }
    return {name: median_seconds(function, repeats) for name, function in parts.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=4, help="images per path (median over them)")
    parser.add_argument("--height", type=int, default=1024)
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of the plain pass and the parts")
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON line, last")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_pipeline_") as folder:
        data, ood_index = big_input(folder, args.height, args.width)
        logits = torch.from_numpy(np.log(np.maximum(data["probs"], np.finfo(np.float32).tiny)))
        base = dataclasses.replace(default_config(), VALSET="Fishyscapes", val_epoch=0, segment_workers=1)
        results = {name: step_seconds(dataclasses.replace(base, io_root=os.path.join(folder, name),
                                                          store_probs=store_probs),
                                      data, logits, args.images, ood_index)
                   for name, store_probs in PATHS.items()}
        parts = prepare_parts(base, data, logits, args.repeats, ood_index)
    floor = median_seconds(lambda: data["probs"].sum(), args.repeats)
    context = (f"logits log p of gen_big {args.height}x{args.width} seed 7 ({data['probs'].nbytes / 1e6:.0f} MB "
               f"softmax), {args.images} images per path, median per image; torch threads {torch.get_num_threads()}, "
               f"{os.cpu_count()} CPUs; files read back from the page cache")
    print(context + "\n")
    figures = []
    print(f"{'step':<22}" + "".join(f"{name + ' s':>14}" for name in PATHS))
    for step in STEPS:
        print(f"{step:<22}" + "".join(f"{results[name][0][step]:>14.4f}" for name in PATHS))
        figures += [figure(f"{name}: {step}", results[name][0][step], "s") for name in PATHS]
    totals = {name: sum(results[name][0].values()) for name in PATHS}
    print(f"{'per image':<22}" + "".join(f"{totals[name]:>14.4f}" for name in PATHS))
    print(f"{'MB written per image':<22}" + "".join(f"{results[name][1] / 1e6:>14.2f}" for name in PATHS))
    target = expected("pipeline", "compact path, per image").target_text()
    print(f"\nplain pass over the softmax (np.sum): {floor:.4f} s; compact path {totals['compact'] / floor:.0f}x, "
          f"probs path {totals['probs'] / floor:.0f}x; target of the compact path {target} s")
    print("compact prepare stage, of which: " + ", ".join(f"{name} {s:.4f} s" for name, s in parts.items()))
    figures += [figure(f"{name} path, per image", totals[name], "s") for name in PATHS]
    figures += [figure(f"{name} path, bytes per image", results[name][1] / 1e6, "MB") for name in PATHS]
    figures += [figure("plain pass over the softmax", floor, "s"),
                figure("compact path / plain pass", totals["compact"] / floor, "x"),
                figure("probs path / compact path", totals["probs"] / totals["compact"], "x")]
    figures += [figure(f"compact prepare: {name}", s, "s") for name, s in parts.items()]
    if args.json:
        print_json("pipeline", figures, context)


if __name__ == "__main__":
    main()
