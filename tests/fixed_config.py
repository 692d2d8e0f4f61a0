"""The configuration every test runs with (tests/conftest.py points META_OOD_CONFIG here), so that a
user's edits of config.py never change what the tests see: the reference's defaults."""
from src.dataset import evaluation_sets, training_sets
from src.model import NETWORKS

TRAINSETS = training_sets()
VALSETS = evaluation_sets()
MODELS = list(NETWORKS)

TRAINSET = "Cityscapes+COCO"
VALSET = "LostAndFound"
MODEL = "DeepLabV3+_WideResNet38"

IO_ROOT = "/nonexistent/io"

CITYSCAPES_ROOT = "/nonexistent/cityscapes"
COCO_ROOT = "/nonexistent/COCO/2017"
LOSTANDFOUND_ROOT = "/nonexistent/lost_and_found"
FISHYSCAPES_ROOT = "/nonexistent/fishyscapes"
FISHYSCAPES_SPLIT = "Static"
ROADANOMALY21_ROOT = "/nonexistent/segment_me"
ROADANOMALY21_SPLIT = "validation"
ROADOBSTACLE21_ROOT = "/nonexistent/segment_me"
ROADOBSTACLE21_SPLIT = "validation"

INIT_CKPT = None
WEIGHTS_DIR = None

params = {
    "training_starting_epoch": 0,
    "num_training_epochs": 1,
    "pareto_alpha": 0.9,
    "ood_subsampling_factor": 0.1,
    "learning_rate": 1e-5,
    "crop_size": 480,
    "val_epoch": 1,
    "batch_size": 8,
    "entropy_threshold": 0.7,
}

SEED = 0
NUM_WORKERS = 2
INFERENCE_BATCH_SIZE = 1
SEGMENT_WORKERS = 2
