"""Throughput and memory of the paper networks on a GPU (or, at small sizes, on the CPU).

    python bench/bench_gpu.py [--networks DeepLabV3+_WideResNet38 DualGCNNet_res50] [--height 1024]
        [--width 2048] [--batch 1] [--crop 480] [--train_batch 8] [--images 8] [--repeats 3] [--json]

(the sizes shown are the defaults on a GPU; on a CPU they default to 128x256, crop 64, batch 2, 4 images)

Per network (src.model.build_network, random weights: the speed does not depend on them), in fp32
and under bf16 autocast (--amp bf16):
    inference      images/s of a forward pass of --batch images of --height x --width, and its peak
                   memory (GPU only: torch.cuda.max_memory_allocated); the largest difference of the bf16 softmax from the fp32 one
    training step  seconds and peak memory of one step (forward, the entropy-maximization loss,
                   backward, Adam) on --train_batch random crops of --crop x --crop
    prepare        images/s of `meta_classification.py -prepare -segment` (compact outputs) on a
                   generated Fishyscapes-like set of --images images, the network's loading included
Timings are medians of --repeats after a warm-up run; on a GPU they end with torch.cuda.synchronize.
The paper's sizes need a GPU; on a CPU, use small ones (the tests run it at 64x128).
"""
import argparse
import contextlib
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(REPO))

import meta_classification  # noqa: E402
from bench.common import MB, figure, median_seconds, print_json  # noqa: E402
from src.errors import run_main  # noqa: E402
from src.loss import entropy_maximization_loss  # noqa: E402
from src.model import build_network, default_device  # noqa: E402

PAPER_NETWORKS = ["DeepLabV3+_WideResNet38", "DualGCNNet_res50"]
PRECISIONS = ("fp32", "bf16")


@dataclasses.dataclass(frozen=True)
class Sizes:
    height: int
    width: int
    batch: int
    crop: int
    train_batch: int
    images: int
    repeats: int


PAPER_SIZES = dict(height=1024, width=2048, crop=480, train_batch=8, images=8)
CPU_SIZES = dict(height=128, width=256, crop=64, train_batch=2, images=4)


def _synchronized(device, function):
    def call():
        result = function()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return result
    return call


def synchronized_seconds(device, function, repeats):
    """Median seconds of `function`, each call waited for on a GPU, after one warm-up call."""
    call = _synchronized(device, function)
    call()
    return median_seconds(call, repeats)


def peak_mb(device, function):
    """Peak GPU memory of one call of `function` in MB (allocated by torch); None on a CPU, where the
    allocators keep what an earlier call freed, so that the resident growth of a call says little."""
    if device.type != "cuda":
        return None
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    _synchronized(device, function)()
    return (torch.cuda.max_memory_allocated(device) - before) / MB


def _autocast(device, precision):
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def inference_figures(name, network, device, sizes):
    images = torch.randn(sizes.batch, 3, sizes.height, sizes.width, device=device)
    figures, probs = [], {}
    for precision in PRECISIONS:
        def forward():
            with torch.inference_mode(), _autocast(device, precision):
                return network(images).float()
        seconds = synchronized_seconds(device, forward, sizes.repeats)
        figures.append(figure(f"{name}: inference {precision}", sizes.batch / seconds, "images/s"))
        peak = peak_mb(device, forward)
        figures += [] if peak is None else [figure(f"{name}: inference {precision} peak memory", peak, "MB")]
        probs[precision] = torch.softmax(forward(), 1)
    difference = (probs["bf16"] - probs["fp32"]).abs().max().item()
    return figures + [figure(f"{name}: bf16 max abs probability difference", difference, "")]


def training_figures(name, network, device, sizes):
    images = torch.randn(sizes.train_batch, 3, sizes.crop, sizes.crop, device=device)
    generator = torch.Generator().manual_seed(0)
    targets = torch.randint(0, 19, (sizes.train_batch, sizes.crop, sizes.crop), generator=generator)
    targets[:, : sizes.crop // 4] = 254  # an OoD-proxy object in each crop
    targets = targets.to(device)
    network.train()
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-5)
    figures = []
    for precision in PRECISIONS:
        def step():
            with _autocast(device, precision):
                logits = network(images)
            loss = entropy_maximization_loss(logits, targets, 0.9)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        figures.append(figure(f"{name}: training step {precision}", synchronized_seconds(device, step, sizes.repeats), "s"))
        peak = peak_mb(device, step)
        figures += [] if peak is None else [figure(f"{name}: training step {precision} peak memory", peak, "MB")]
    network.eval()
    return figures


def fishyscapes_like_set(root, sizes):
    """A pre-converted Fishyscapes Static split of random images with an OoD box each (made once per run)."""
    folder = Path(root, "Static")
    if folder.exists():
        return root
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(sizes.images):
        Image.fromarray(rng.integers(0, 256, (sizes.height, sizes.width, 3), dtype=np.uint8)).save(folder / f"{i}.jpg")
        labels = np.zeros((sizes.height, sizes.width), np.uint8)
        labels[sizes.height // 2:, : sizes.width // 4] = 1
        labels[-sizes.height // 10:] = 255
        Image.fromarray(labels).save(folder / f"{i}.png")
    return root


def prepare_figures(name, network, folder, sizes):
    """images/s of meta_classification.py -prepare -segment, in fp32 and bf16."""
    checkpoint = Path(folder, f"{name}.pth")
    torch.save({"state_dict": network.state_dict()}, checkpoint)
    data = fishyscapes_like_set(Path(folder, "fishyscapes"), sizes)
    figures = []
    for precision in PRECISIONS:
        argv = ["-prepare", "-segment", "-val", "Fishyscapes", "--fishyscapes_root", str(data), "--fishyscapes_split",
                "Static", "-epoch", "0", "-model", name, "--init_ckpt", str(checkpoint), "--io_root",
                str(Path(folder, f"io_{name}_{precision}")), "-batch", str(sizes.batch), "--amp",
                "bf16" if precision == "bf16" else "none", "--segment_workers", "1"]
        start = time.perf_counter()
        if run_main(meta_classification.main, argv) != 0:
            raise RuntimeError(f"meta_classification.py {' '.join(argv)} failed")
        figures.append(figure(f"{name}: -prepare -segment {precision}", sizes.images / (time.perf_counter() - start),
                              "images/s"))
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--networks", nargs="+", default=PAPER_NETWORKS, help="src.model network names")
    parser.add_argument("--height", type=int, help="default 1024 on a GPU, 128 on a CPU")
    parser.add_argument("--width", type=int, help="default 2048 on a GPU, 256 on a CPU")
    parser.add_argument("--batch", type=int, default=1, help="inference images per batch (-batch)")
    parser.add_argument("--crop", type=int, help="side of the training crops; default 480 on a GPU, 64 on a CPU")
    parser.add_argument("--train_batch", type=int, help="crops per training step; default 8 on a GPU, 2 on a CPU")
    parser.add_argument("--images", type=int, help="images of the -prepare -segment run; default 8 on a GPU, 4 on "
                        "a CPU")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON line, last")
    args = parser.parse_args()
    # The paper's sizes on a GPU; on a CPU small ones, so that `run_all.py` finishes (the figures then
    # only show that the script works).
    defaults = PAPER_SIZES if torch.cuda.is_available() else CPU_SIZES
    chosen = {k: getattr(args, k) if getattr(args, k) is not None else v for k, v in defaults.items()}
    sizes = Sizes(batch=args.batch, repeats=args.repeats, **chosen)
    device = default_device()
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    context = (f"{where}; inference {sizes.batch}x3x{sizes.height}x{sizes.width}, training {sizes.train_batch}x3x"
               f"{sizes.crop}x{sizes.crop}, -prepare -segment of {sizes.images} images; median of {sizes.repeats}")
    print(context)
    figures = []
    with tempfile.TemporaryDirectory(prefix="bench_gpu_") as folder:
        for name in args.networks:
            torch.manual_seed(0)
            network = build_network(name, 19).to(device).eval()
            figures += inference_figures(name, network, device, sizes)
            figures += training_figures(name, network, device, sizes)
            figures += prepare_figures(name, network, folder, sizes)
            del network
            if device.type == "cuda":
                torch.cuda.empty_cache()
    width = max(len(f["name"]) for f in figures)
    for f in figures:
        print(f"{f['name']:<{width}}  {f['value']:10.4g} {f['unit']}")
    if args.json:
        print_json("gpu", figures, context)


if __name__ == "__main__":
    main()
