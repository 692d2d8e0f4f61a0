"""Step 3: evaluate OoD detection on an evaluation set: the OoD-trained network (-epoch E, or the file
--ckpt names) beside the baseline when its checkpoint or outputs exist (-epoch 0: the baseline alone).

    python evaluation.py [-val VALSET] [-epoch E] [-pixel] [-segment] [-miou] [--score SCORE]

-pixel: AUROC, FPR95, AUPRC of the pixel-wise OoD score (paper and exact protocol);
-segment: FP / FN segment counts before and after meta classification, component metrics;
-miou: in-distribution mIoU on the Cityscapes val split. Without a flag: -pixel and -segment.
Missing inputs (the prepare stage's outputs, segment search, meta classifier) are computed first.
Numbers go to a JSON file under <io_root>, pictures under <io_root>/plots; a table is printed.

    torchrun --nproc_per_node=N evaluation.py ...   # the network's work (prepare, mIoU) on N GPUs
"""
import sys

from src import paths
from src.distributed import current_process, leave_process_group
from src.errors import run_main
from src.evaluation import evaluate
from src.run_log import recorded_run
from src.settings import parse_run_config


def main(argv=None):
    cfg = parse_run_config("evaluation", argv)
    every_stage = not (cfg.pixel_eval or cfg.segment_eval or cfg.miou)
    with recorded_run(cfg, "evaluation"):
        evaluate(cfg, pixel=every_stage or cfg.pixel_eval, segment=every_stage or cfg.segment_eval, miou=cfg.miou)
    if current_process().is_main:
        with open(paths.table_file(cfg)) as f:
            print(f"\n{f.read()}")
    leave_process_group()


if __name__ == "__main__":
    sys.exit(run_main(main))
