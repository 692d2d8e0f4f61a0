"""Step 1: fine-tune a segmentation network to maximize its softmax entropy on COCO objects.

    python ood_training.py [-model MODEL] [-alpha ALPHA] [-epoch E] [-nepochs N] ...
    torchrun --nproc_per_node=4 ood_training.py ...        # several GPUs

Saves <weights_dir>/<MODEL>_epoch_<e>_alpha_<alpha>.pth after each epoch; running the same
command again continues after the last saved epoch. `-h` lists every flag.
"""
import sys

from src.distributed import leave_process_group
from src.errors import run_main
from src.run_log import recorded_run
from src.settings import parse_run_config
from src.training import train


def main(argv=None):
    cfg = parse_run_config("ood_training", argv)
    with recorded_run(cfg, "ood_training"):
        train(cfg)
    leave_process_group()


if __name__ == "__main__":
    sys.exit(run_main(main))
