"""Step 3: evaluate OoD detection on an evaluation set: the OoD-trained network (-epoch E, or the file
--ckpt names) beside the baseline when its checkpoint or outputs exist (-epoch 0: the baseline alone).

    python evaluation.py [-val VALSET] [-epoch E] [-pixel] [-segment] [-miou] [-smiyc] [--submission] [--score SCORE]

-pixel: AUROC, FPR95, AUPRC of the pixel-wise OoD score (paper and exact protocol);
-segment: FP / FN segment counts before and after meta classification, component metrics of Meta-OoD's
segments; -miou: in-distribution mIoU on the Cityscapes val split; -smiyc: the SegmentMeIfYouCan
protocol on a SMIYC set (RoadAnomaly21, RoadObstacle21, LostAndFound-testNoKnown, Fishyscapes
LostAndFound). Without a flag: -pixel and -segment, and -smiyc on a SMIYC set.
--submission: the benchmark's submission files of the network -epoch on the SMIYC set's split (test
splits too, whose labels are withheld), of its score and of the meta-classified score.
Missing inputs (the prepare stage's outputs, segment search, meta classifier) are computed first.
Numbers go to a JSON file under <io_root>, pictures under <io_root>/plots; a table is printed.

    torchrun --nproc_per_node=N evaluation.py ...   # the network's work (prepare, mIoU) on N GPUs
"""
import sys

from src import paths
from src.distributed import current_process, leave_process_group
from src.errors import run_main
from src.evaluation import evaluate, smiyc_track
from src.run_log import recorded_run
from src.settings import parse_run_config
from src.submission import submission_name, write_submission


def main(argv=None):
    cfg = parse_run_config("evaluation", argv)
    every_stage = not (cfg.pixel_eval or cfg.segment_eval or cfg.miou or cfg.smiyc_eval or cfg.submission)
    stages = dict(pixel=every_stage or cfg.pixel_eval, segment=every_stage or cfg.segment_eval, miou=cfg.miou,
                  smiyc=cfg.smiyc_eval or (every_stage and smiyc_track(cfg) is not None))
    with recorded_run(cfg, "evaluation"):
        if cfg.submission:
            submission_name(cfg)  # a set without submission is refused before any work
        if any(stages.values()):
            evaluate(cfg, **stages)
        if cfg.submission:  # every process: the network's share first
            write_submission(cfg)
    if any(stages.values()) and current_process().is_main:
        with open(paths.table_file(cfg)) as f:
            print(f"\n{f.read()}")
    leave_process_group()


if __name__ == "__main__":
    sys.exit(run_main(main))
