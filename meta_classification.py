"""Step 2: OoD segments and their meta classification, on an evaluation set.

    python meta_classification.py [-val VALSET] [-epoch E] [-threshold T] [-prepare] [-segment] [-removal]

Stages (all three when none is named): -prepare runs the network on every image and keeps, per
image, compact outputs (or, with --store_probs, its whole softmax in a probs file); -segment
computes the MetaSeg metrics of every predicted and ground-truth OoD segment (the compact prepare
stage writes them already); -removal cross-validates the meta classifier and removes the segments
it flags as false positives. `-epoch 0` evaluates the baseline (--init_ckpt). Finished work is
never redone.
On a split whose labels are withheld (a SegmentMeIfYouCan test split) only -prepare runs: MetaSeg's
segments leave out the void pixels, all of them there, and the meta classifier has nothing to learn
from; evaluation.py --submission searches the segments without void and fits the classifier on the
validation split (src/submission.py).

    torchrun --nproc_per_node=N meta_classification.py ...   # the prepare stage on N GPUs
"""
import logging
import sys

from src.dataset import DATASETS, require_labels
from src.distributed import current_process, leave_process_group
from src.errors import run_main
from src.fp_removal import remove_false_positives
from src.inference import prepare_images
from src.run_log import recorded_run
from src.segment_search import run_segment_search
from src.settings import parse_run_config

logger = logging.getLogger(__name__)


def main(argv=None):
    cfg = parse_run_config("meta_classification", argv)
    spec = DATASETS[cfg.VALSET].spec
    every_stage = not (cfg.pre_process or cfg.segment_search or cfg.fp_removal)
    labelled_stages = every_stage and spec.split_info(cfg).labelled
    with recorded_run(cfg, "meta_classification"):
        if cfg.segment_search or cfg.fp_removal:
            require_labels(cfg.VALSET, cfg)
        if every_stage or cfg.pre_process:
            prepare_images(cfg, cfg.val_epoch)  # every process its share; returns when all are done
        if current_process().is_main:
            if every_stage and not labelled_stages:
                logger.info("segment search and false-positive removal skipped: the labels of %s %s are withheld",
                            cfg.VALSET, spec.split_of(cfg))
            if labelled_stages or cfg.segment_search:
                run_segment_search(cfg, cfg.val_epoch, DATASETS[cfg.VALSET].train_id_out)
            if labelled_stages or cfg.fp_removal:
                remove_false_positives(cfg, cfg.val_epoch)
    leave_process_group()


if __name__ == "__main__":
    sys.exit(run_main(main))
