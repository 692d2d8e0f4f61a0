"""Settings of a Meta-OoD run: the one place to edit.

Every value here is a default; the three scripts override any of them per run with
command-line flags (`python ood_training.py -h` lists them, with what each changes).
Nothing in this file is changed by a run: flags produce a new, resolved configuration.
Each setting is declared once in src/settings.py (flags, checks, help); a data set's root
and split setting come from its spec in src/dataset/. Another file can stand in for this
one: META_OOD_CONFIG=/path/to/my_config.py python evaluation.py ...

Folder layout of the outputs (all below IO_ROOT; src/paths.py):
    meta_ood_<MODEL>/weights/<MODEL>_epoch_<e>_alpha_<alpha>.pth   OoD-trained checkpoints
    meta_ood_<MODEL>/<eval_subdir>/probs/...                        softmax outputs per image
    meta_ood_<MODEL>/<eval_subdir>/metaseg_io/...                   segment metrics, meta classifier
    meta_ood_<MODEL>/<eval_subdir>/results/                         evaluation numbers
    meta_ood_<MODEL>/miou/                                          in-distribution mIoU (Cityscapes val)
    plots/<MODEL>_<eval_subdir>/                                    evaluation pictures
    logs/                                                           one log file per script run
    smiyc_submission/anomaly_p/<method>/<set>/<fid>.hdf5            SegmentMeIfYouCan submission files
<eval_subdir> is the evaluation set's output folder: laf_eval (LostAndFound), fs_eval
(Fishyscapes Static), fs_laf_eval (Fishyscapes' LostAndFound split), ra21_val / ra21_test
(RoadAnomaly21), ro21_val / ro21_test (RoadObstacle21), laf_noknown_eval (LostAndFound-testNoKnown).
"""
from src.dataset import evaluation_sets, training_sets
from src.model import NETWORKS

TRAINSETS = training_sets()  # the registry's training sets (src/dataset/__init__.py)
VALSETS = evaluation_sets()  # the registry's evaluation sets
MODELS = list(NETWORKS)  # the two paper networks, plus a small one that trains on a CPU (demo, tests)

TRAINSET = "Cityscapes+COCO"  # training set of ood_training.py
VALSET = "LostAndFound"  # evaluation set of meta_classification.py and evaluation.py
MODEL = "DeepLabV3+_WideResNet38"  # network; "DualGCNNet_res50" is the paper's other one

IO_ROOT = "/home/user/io/ood_detection"  # every output goes below this folder

CITYSCAPES_ROOT = "/home/datasets/cityscapes"  # holds leftImg8bit/ and gtFine/
COCO_ROOT = "/home/datasets/COCO/2017"  # ends in the year: <COCO_ROOT>/annotations/instances_train2017.json
LOSTANDFOUND_ROOT = "/home/datasets/lost_and_found"  # holds leftImg8bit/ and gtCoarse/
FISHYSCAPES_ROOT = "/home/datasets/fishyscapes"  # the unpacked Fishyscapes validation sets
FISHYSCAPES_SPLIT = "Static"  # or "LostAndFound" (SegmentMeIfYouCan's FishyLAF)
ROADANOMALY21_ROOT = "/home/datasets/segment_me"  # holds dataset_AnomalyTrack/ (SegmentMeIfYouCan)
ROADANOMALY21_SPLIT = "validation"  # or "test" (labels withheld: submission files only)
ROADOBSTACLE21_ROOT = "/home/datasets/segment_me"  # holds dataset_ObstacleTrack/ (SegmentMeIfYouCan)
ROADOBSTACLE21_SPLIT = "validation"  # or "test" (labels withheld: submission files only)

INIT_CKPT = None  # Cityscapes-pretrained weights; None: <IO_ROOT>/weights/<MODEL>.pth
WEIGHTS_DIR = None  # OoD-trained checkpoints; None: <IO_ROOT>/meta_ood_<MODEL>/weights

num_training_epochs = 1  # the reference's default (the published checkpoints trained 4)

params = {
    "training_starting_epoch": 0,  # 0 starts from INIT_CKPT; e > 0 resumes the checkpoint of epoch e
    "num_training_epochs": num_training_epochs,  # epochs per ood_training.py run
    "pareto_alpha": 0.9,  # weight of the entropy term (0: plain cross-entropy)
    "ood_subsampling_factor": 0.1,  # COCO images per epoch, as a share of the Cityscapes images
    "learning_rate": 1e-5,  # Adam
    "crop_size": 480,  # side of the random square training crop
    "val_epoch": num_training_epochs,  # epoch evaluated by meta_classification.py / evaluation.py (0: baseline)
    "batch_size": 8,  # training images per batch (per process under torchrun)
    "entropy_threshold": 0.7,  # normalized entropy above which a pixel is OoD
}

SEED = 0  # training order, COCO subsets, k-fold splits
NUM_WORKERS = 2  # data-loading processes for training and inference
INFERENCE_BATCH_SIZE = 1  # full-resolution images per inference batch
SEGMENT_WORKERS = 2  # processes for the segment search of meta classification
