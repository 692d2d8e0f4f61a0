"""Settings of a Meta-OoD run: the one place to edit.

Every value here is a default; the three scripts override any of them per run
with command-line flags (`python ood_training.py -h` lists them). Nothing in
this file is changed by a run: flags produce a new, resolved configuration.

Folder layout of the outputs (all below IO_ROOT; src/paths.py):
    meta_ood_<MODEL>/weights/<MODEL>_epoch_<e>_alpha_<alpha>.pth   OoD-trained checkpoints
    meta_ood_<MODEL>/<eval_subdir>/probs/...                        softmax outputs per image
    meta_ood_<MODEL>/<eval_subdir>/metaseg_io/...                   segment metrics, meta classifier
    meta_ood_<MODEL>/<eval_subdir>/results/                         evaluation numbers
    meta_ood_<MODEL>/miou/                                          in-distribution mIoU (Cityscapes val)
    plots/<MODEL>_<eval_subdir>/                                    evaluation pictures
<eval_subdir> is laf_eval (LostAndFound), fs_eval (Fishyscapes Static) or fs_laf_eval
(Fishyscapes' LostAndFound split).
"""

TRAINSETS = ["Cityscapes+COCO"]
VALSETS = ["LostAndFound", "Fishyscapes"]
# The two paper networks, plus a small network that trains on a CPU (demo, tests).
MODELS = ["DeepLabV3+_WideResNet38", "DualGCNNet_res50", "DeepLabV3+_MobileNetV3"]

TRAINSET = TRAINSETS[0]
VALSET = VALSETS[0]
MODEL = MODELS[0]

IO_ROOT = "/home/user/io/ood_detection"

# Dataset roots. COCO's root ends in the year: <coco_root>/annotations/instances_train2017.json.
CITYSCAPES_ROOT = "/home/datasets/cityscapes"
COCO_ROOT = "/home/datasets/COCO/2017"
LOSTANDFOUND_ROOT = "/home/datasets/lost_and_found"
FISHYSCAPES_ROOT = "/home/datasets/fishyscapes"
FISHYSCAPES_SPLIT = "Static"  # or "LostAndFound"

# Cityscapes-pretrained weights the OoD training starts from (NVIDIA's cityscapes_best.pth
# for DeepLabV3+, GALD's checkpoint for DualGCNNet). None: <IO_ROOT>/weights/<MODEL>.pth
INIT_CKPT = None
# Where OoD-trained checkpoints go. None: <IO_ROOT>/meta_ood_<MODEL>/weights
WEIGHTS_DIR = None

num_training_epochs = 1

params = {
    "training_starting_epoch": 0,
    "num_training_epochs": num_training_epochs,
    "pareto_alpha": 0.9,
    "ood_subsampling_factor": 0.1,
    "learning_rate": 1e-5,
    "crop_size": 480,
    "val_epoch": num_training_epochs,
    "batch_size": 8,
    "entropy_threshold": 0.7,
}

SEED = 0
# Data-loading processes for training and inference.
NUM_WORKERS = 2
# Full-resolution images per inference batch (evaluation scripts).
INFERENCE_BATCH_SIZE = 1
# Processes for the segment search of meta classification (at least 1).
SEGMENT_WORKERS = 2
