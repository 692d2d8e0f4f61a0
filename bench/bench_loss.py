"""Time and peak memory of the entropy-maximization loss + backward (docs/METHOD.md §2) on the CPU.

Variants, on seeded logits 8x19x480x480 float32 and Cityscapes-like targets (void, 254 blocks):
  ours       src.loss.entropy_maximization_loss (fused autograd Function)
  autograd   the same sums written with log_softmax / gather / mean and left to autograd
  dense      the reference's formulation: a dense float64 target on the CPU,
             mean(target.float() * -log_softmax(logits))
Each variant runs in fresh subprocesses, interleaved with the others. Its peak memory is
ru_maxrss after the timed runs minus ru_maxrss once the logits, the targets and a gradient-sized
buffer have been allocated (after a small warm-up run): the memory a variant needs beyond the
logits and their gradient.

    .venv/bin/python bench/bench_loss.py [--rounds 3] [--repeats 5] [--threads 2] [--json]
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time

import torch

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import MB, child_stdout, figure, print_json  # noqa: E402
from src.loss import entropy_maximization_loss  # noqa: E402

B, C, H, W = 8, 19, 480, 480
ALPHA = 0.9
VARIANTS = ["ours", "autograd", "dense"]


def inputs(seed=0):
    """Random logits and targets: train ids, a void border stripe and 254 (OoD) blocks."""
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, C, H, W, generator=gen) * 3
    target = torch.randint(0, C, (B, H, W), generator=gen)
    target[:, -40:] = 255
    for b in range(B):
        top, left = torch.randint(0, H - 120, (2,), generator=gen).tolist()
        target[b, top:top + 120, left:left + 120] = 254
    return logits, target


def autograd_loss(logits, target, alpha):
    is_in = target < C
    log_p = torch.log_softmax(logits, 1)
    nll = -log_p.gather(1, torch.where(is_in, target, 0)[:, None]).squeeze(1)
    ood = -log_p.mean(1)
    return ((1 - alpha) * nll[is_in].sum() + alpha * ood[target == 254].sum()) / logits.numel()


def dense_loss(logits, target, alpha):
    """The reference's objective: a dense float64 one-hot target built on the CPU."""
    is_in = target < C
    dense = torch.zeros(logits.shape, dtype=torch.float64)
    dense.scatter_(1, torch.where(is_in, target, 0)[:, None], is_in[:, None].double() * (1 - alpha))
    dense += (target == 254)[:, None].double() * (alpha / C)
    return torch.mean(dense.float() * -torch.log_softmax(logits, 1))


LOSSES = {
    "ours": lambda x, t: entropy_maximization_loss(x, t, ALPHA),
    "autograd": lambda x, t: autograd_loss(x, t, ALPHA),
    "dense": lambda x, t: dense_loss(x, t, ALPHA),
}


def max_rss_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure(variant, repeats):
    """Seconds of each loss + backward, and peak bytes beyond logits, targets and gradient."""
    logits, target = inputs()
    logits.requires_grad_(True)
    small = logits.detach()[:1, :, :8, :8].clone().requires_grad_(True)
    LOSSES[variant](small, target[:1, :8, :8]).backward()  # load code, start autograd's threads
    torch.ones_like(logits).zero_()  # touch a gradient-sized buffer: the baseline includes it
    baseline = max_rss_bytes()
    times = []
    for _ in range(repeats):
        logits.grad = None
        start = time.perf_counter()
        LOSSES[variant](logits, target).backward()
        times.append(time.perf_counter() - start)
    return {"variant": variant, "seconds": times,
            "peak_bytes": max_rss_bytes() - baseline}


def run_in_subprocess(variant, repeats, threads):
    cmd = [sys.executable, __file__, "--child", variant, "--repeats", str(repeats),
           "--threads", str(threads)]
    return json.loads(child_stdout(cmd))


def interleaved(rounds, repeats, threads):
    """Per variant: the median time and the largest peak over `rounds` rounds of all variants
    (interleaved, so that a change in the machine's load hits every variant alike)."""
    runs = [run_in_subprocess(v, repeats, threads) for _ in range(rounds) for v in VARIANTS]
    return {v: {"seconds": statistics.median(t for r in runs if r["variant"] == v for t in r["seconds"]),
                "peak_bytes": max(r["peak_bytes"] for r in runs if r["variant"] == v)}
            for v in VARIANTS}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per subprocess")
    parser.add_argument("--rounds", type=int, default=3, help="subprocesses per variant")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON line, last")
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        print(json.dumps(measure(args.child, args.repeats)))
        return
    print(f"logits {B}x{C}x{H}x{W} float32 ({B * C * H * W * 4 / 1e6:.0f} MB), alpha {ALPHA}, "
          f"{args.threads} threads, median of {args.rounds} x {args.repeats} runs", flush=True)
    results = interleaved(args.rounds, args.repeats, args.threads)
    dense = results["dense"]
    for v, r in results.items():
        print(f"{v:9s} {r['seconds']:.3f} s  peak beyond logits+grad {r['peak_bytes'] / MB:7.0f} MB  "
              f"dense/this: time x{dense['seconds'] / r['seconds']:.2f}, "
              f"memory x{dense['peak_bytes'] / max(r['peak_bytes'], 1):.2f}")
    if args.json:
        print_json("loss", figures(results), f"logits {B}x{C}x{H}x{W}, {args.threads} threads, "
                   f"median of {args.rounds} x {args.repeats} runs")


def figures(results):
    """Time and peak memory beyond logits+grad of each variant, dense / ours of both, and the dense
    peak with the logits and their gradient counted in, to compare with the reference's peak."""
    dense, ours = results["dense"], results["ours"]
    logits_bytes = B * C * H * W * 4
    return ([figure(f"{v} time", r["seconds"], "s") for v, r in results.items()]
            + [figure(f"{v} peak beyond logits+grad", r["peak_bytes"] / MB, "MB") for v, r in results.items()]
            + [figure("dense peak with logits+grad", (dense["peak_bytes"] + 2 * logits_bytes) / MB, "MB"),
               figure("time dense / ours", dense["seconds"] / ours["seconds"], "x"),
               figure("memory dense / ours", dense["peak_bytes"] / max(ours["peak_bytes"], 1), "x")])


if __name__ == "__main__":
    main()
