"""The whole Meta-OoD pipeline on generated data, through the real scripts, in minutes on a CPU.

    python preparation/demo.py [--root demo] [--quick] [--seed 0]

The default root is demo for seed 0 and demo_seed<k> for another seed k, so runs of different
seeds never share (and mix) their data sets.

Each step prints the command it runs, so this file doubles as a worked example of the user
workflow: generate the data sets, prepare the COCO proxy, train a small network on the
Cityscapes-like scenes (the baseline), fine-tune it with entropy maximization, run meta
classification and evaluation for both on the LostAndFound- and Fishyscapes-like sets.
Every step skips finished work, so an interrupted demo continues when started again.
`--quick` is a tiny version (a few seconds per step) used by the tests.
"""
import argparse
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(REPO))

from preparation.make_demo_data import demo_roots  # noqa: E402
from src import paths  # noqa: E402
from src.settings import parse_run_config  # noqa: E402

MODEL = "DeepLabV3+_MobileNetV3"
VALSETS = ("LostAndFound", "Fishyscapes")


@dataclass(frozen=True)
class Plan:
    """Sizes of a demo run."""
    data: tuple  # flags of make_demo_data.py
    baseline_epochs: int
    baseline_lr: float
    ood_epochs: int
    ood_lr: float
    ood_subsampling_factor: float
    crop: int
    max_iters: int  # 0: whole epochs


# A short fine-tuning: with so few COCO-like images the LostAndFound-like AUPRC peaks after 4..8
# epochs and falls again as the network starts to memorize them.
FULL = Plan(data=(), baseline_epochs=60, baseline_lr=1e-3, ood_epochs=6, ood_lr=1e-4,
            ood_subsampling_factor=0.3, crop=128, max_iters=0)
# 12 LostAndFound-like images: enough that a test can interrupt the segment search after the first.
QUICK = Plan(data=("--height", "64", "--width", "128", "--n_cityscapes_train", "8", "--n_cityscapes_val", "2",
                   "--n_coco", "12", "--n_lostandfound", "12", "--n_fishyscapes", "3"),
             baseline_epochs=2, baseline_lr=1e-3, ood_epochs=1, ood_lr=1e-4,
             ood_subsampling_factor=0.5, crop=64, max_iters=2)


def run(*command):
    """Runs one step of the pipeline as a user would type it; stops the demo if it fails."""
    shown = " ".join(str(c) for c in command)
    print(f"\n$ {shown}", flush=True)
    start = time.monotonic()
    subprocess.run([sys.executable, *map(str, command)], cwd=REPO, check=True)
    print(f"  ({time.monotonic() - start:.0f} s)", flush=True)


def parsed(script, flags):
    """The run configuration `flags` give `script`: where a step puts its outputs."""
    return parse_run_config(script, [str(a) for a in flags])


def default_root(seed: int) -> str:
    return "demo" if seed == 0 else f"demo_seed{seed}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", help="folder for data sets and outputs (default: demo for --seed 0, "
                                       "demo_seed<k> for --seed k)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for tests")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data and the training (default: 0)")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    root = Path(args.root or default_root(args.seed)).resolve()
    data, io = root / "datasets", root / "io"
    datasets = demo_roots(data)
    start = time.monotonic()

    run("preparation/make_demo_data.py", "--root", data, "--seed", args.seed, *plan.data)
    run("preparation/prepare_coco_segmentation.py", "--coco_root", datasets["COCO"])

    common = ["-model", MODEL, "--io_root", io, "--seed", args.seed, "--num_workers", 0]
    roots = ["--cityscapes_root", datasets["Cityscapes"], "--coco_root", datasets["COCO"]]
    training = ["ood_training.py", *common, *roots, "-crop", plan.crop, "-batch", 8, "--max_iters", plan.max_iters]
    # The baseline: plain cross-entropy (alpha 0) on the Cityscapes-like scenes alone, from scratch.
    baseline_training = [*training, "-alpha", 0.0, "--no_init_ckpt", "--ood_subsampling_factor", 0,
                         "-nepochs", plan.baseline_epochs, "-lr", plan.baseline_lr]
    run(*baseline_training)
    baseline = paths.checkpoint_path(parsed("ood_training", baseline_training[1:]), plan.baseline_epochs)
    # Entropy maximization on the COCO-like objects, starting from the baseline; the later steps
    # name the same run.
    entropy_run = ["--init_ckpt", baseline, "-alpha", 0.9]
    run(*training, *entropy_run,
        "--ood_subsampling_factor", plan.ood_subsampling_factor, "-nepochs", plan.ood_epochs, "-lr", plan.ood_lr)

    tables = []
    for valset in VALSETS:
        evaluated = [*common, *entropy_run, "-val", valset, "--lostandfound_root", datasets["LostAndFound"],
                     "--fishyscapes_root", datasets["Fishyscapes"], "--segment_workers", 1]
        for epoch in (0, plan.ood_epochs):  # baseline, then the entropy-trained network
            run("meta_classification.py", *evaluated, "-epoch", epoch)
        evaluation = [*evaluated, "--cityscapes_root", datasets["Cityscapes"], "-epoch", plan.ood_epochs,
                      "-pixel", "-segment", "-miou"]
        run("evaluation.py", *evaluation)
        tables.append(paths.table_file(parsed("evaluation", evaluation)))

    print(f"\nMeta-OoD demo finished in {(time.monotonic() - start) / 60:.1f} min "
          f"(pixel metrics: paper protocol, in %; mIoU on the Cityscapes-like val split)\n")
    if args.quick:
        print("--quick: the networks are trained for a few iterations only, so the numbers below say nothing\n"
              "about the method; they only show that every step ran. Run the demo without --quick for them.\n")
    for table in tables:
        print(Path(table).read_text())
    print(f"Pictures: {io / 'plots'}\nEvery number, with its configuration: "
          f"{', '.join(str(Path(t).with_suffix('.json')) for t in tables)}")


if __name__ == "__main__":
    try:
        main()
    except subprocess.CalledProcessError as err:
        sys.exit(f"demo: a step failed (exit status {err.returncode}); fix it and run the demo again, "
                 "it continues where it stopped")
    except KeyboardInterrupt:
        sys.exit("demo: interrupted; run it again to continue where it stopped")
