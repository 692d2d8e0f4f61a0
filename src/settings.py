"""A run's configuration: the defaults of config.py, overridden by command-line flags.

`parse_run_config(script, argv)` is the one place where flags meet the defaults.
It returns a new frozen `RunConfig`; the `config` module is never modified.
Invalid values end the script with exit status 2 and a one-line message.
"""
import argparse
import dataclasses
import os
import sys
from dataclasses import dataclass
from typing import Optional

import config as user_config
from src.errors import MetaOodError
from src.scores import SCORE_RANGES


@dataclass(frozen=True)
class RunConfig:
    TRAINSET: str
    VALSET: str
    MODEL: str
    io_root: str
    cityscapes_root: str
    coco_root: str
    lostandfound_root: str
    fishyscapes_root: str
    fishyscapes_split: str
    init_ckpt: Optional[str]
    weights_dir: Optional[str]
    training_starting_epoch: int
    num_training_epochs: int
    pareto_alpha: float
    ood_subsampling_factor: float
    learning_rate: float
    crop_size: int
    val_epoch: int
    batch_size: int
    entropy_threshold: float
    seed: int
    num_workers: int
    segment_workers: int
    inference_batch_size: int
    # ood_training.py
    no_init_ckpt: bool = False
    coco_background_void: bool = False
    amp: str = "none"
    max_iters: int = 0
    # meta_classification.py
    pre_process: bool = False
    segment_search: bool = False
    fp_removal: bool = False
    cv: str = "loo"
    folds: int = 5
    store_logits: bool = False
    # evaluation.py
    pixel_eval: bool = False
    segment_eval: bool = False
    miou: bool = False
    score: str = "entropy"
    bins: int = 10000
    panels: int = 4


class ConfigError(MetaOodError):
    """config.py lacks a setting or has one that is not known."""


# RunConfig field -> the config.py variable of its default. The other RunConfig fields without a
# default of their own are the keys of config.py's `params`.
_CONFIG_VARIABLES = {
    "TRAINSET": "TRAINSET", "VALSET": "VALSET", "MODEL": "MODEL", "io_root": "IO_ROOT",
    "cityscapes_root": "CITYSCAPES_ROOT", "coco_root": "COCO_ROOT", "lostandfound_root": "LOSTANDFOUND_ROOT",
    "fishyscapes_root": "FISHYSCAPES_ROOT", "fishyscapes_split": "FISHYSCAPES_SPLIT", "init_ckpt": "INIT_CKPT",
    "weights_dir": "WEIGHTS_DIR", "seed": "SEED", "num_workers": "NUM_WORKERS",
    "segment_workers": "SEGMENT_WORKERS", "inference_batch_size": "INFERENCE_BATCH_SIZE",
}
_PARAMS = [f.name for f in dataclasses.fields(RunConfig)
           if f.default is dataclasses.MISSING and f.name not in _CONFIG_VARIABLES]


def _config_py_source(field: str) -> str:
    """Where config.py sets `field`: its variable or its params key."""
    return f"params[{field!r}]" if field in _PARAMS else _CONFIG_VARIABLES[field]


def _missing_or_unknown(module) -> list:
    """Messages for the settings config.py lacks and the params keys it has that are not known."""
    params = getattr(module, "params", {})
    missing = [name for name in _CONFIG_VARIABLES.values() if not hasattr(module, name)]
    missing += [f"params[{key!r}]" for key in _PARAMS if key not in params]
    unknown = [f"params[{key!r}]" for key in params if key not in _PARAMS]
    messages = []
    if missing:
        messages.append(f"config.py lacks {', '.join(missing)}")
    if unknown:
        messages.append(f"config.py has unknown {', '.join(unknown)}")
    return messages


def default_config(module=user_config) -> RunConfig:
    """The configuration config.py describes, before any flag; ConfigError if a setting is missing or unknown."""
    problems = _missing_or_unknown(module)
    if problems:
        raise ConfigError("; ".join(problems))
    return RunConfig(**{field: getattr(module, name) for field, name in _CONFIG_VARIABLES.items()},
                     **module.params)


# ---------------------------------------------------------------- value checks

def _checked(convert, ok, expected):
    """An argparse `type` that converts, then rejects values outside `expected`."""
    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text}")
        return value
    return parse


alpha_value = _checked(float, lambda a: 0.0 <= a <= 1.0, "a number in [0, 1]")
threshold_value = _checked(float, lambda t: 0.0 < t < 1.0, "a number in (0, 1)")
positive_float = _checked(float, lambda x: x > 0, "a number > 0")
fraction_value = _checked(float, lambda x: 0.0 <= x <= 1.0, "a number in [0, 1]")
positive_int = _checked(int, lambda n: n > 0, "an integer > 0")
nonnegative_int = _checked(int, lambda n: n >= 0, "an integer >= 0")

# Field -> (checker, the flag that sets it): the values config.py gives pass the same checks.
_CHECKS = {
    "pareto_alpha": (alpha_value, "-alpha/--pareto_alpha"),
    "entropy_threshold": (threshold_value, "-threshold/--entropy_threshold"),
    "learning_rate": (positive_float, "-lr/--learning_rate"),
    "ood_subsampling_factor": (fraction_value, "--ood_subsampling_factor"),
    "crop_size": (positive_int, "-crop/--crop_size"),
    "batch_size": (positive_int, "-batch/--batch_size"),
    "inference_batch_size": (positive_int, "-batch/--inference_batch_size"),
    "training_starting_epoch": (nonnegative_int, "-epoch/--training_starting_epoch"),
    "num_training_epochs": (nonnegative_int, "-nepochs/--num_training_epochs"),
    "val_epoch": (nonnegative_int, "-epoch/--val_epoch"),
    "seed": (nonnegative_int, "--seed"),
    "num_workers": (nonnegative_int, "--num_workers"),
    "segment_workers": (positive_int, "--segment_workers"),
}
_CHOICES = {
    "MODEL": ("MODELS", "-model/--MODEL"),
    "TRAINSET": ("TRAINSETS", "-train/--TRAINSET"),
    "VALSET": ("VALSETS", "-val/--VALSET"),
    "fishyscapes_split": (None, "--fishyscapes_split"),
}
FISHYSCAPES_SPLITS = ["Static", "LostAndFound"]


def config_problems(cfg: RunConfig, fields, module=user_config):
    """Messages for the values of `fields` in `cfg` outside their allowed range (empty: all fine).

    Flags are checked as they are parsed, so a value found here comes from config.py: the message
    names the setting there and the flag that overrides it.
    """
    problems = []
    for field, (check, flag) in _CHECKS.items():
        if field not in fields:
            continue
        try:
            check(str(getattr(cfg, field)))
        except argparse.ArgumentTypeError as err:
            problems.append(f"{field} ({flag}): {err} (from config.py {_config_py_source(field)})")
    for field, (list_name, flag) in _CHOICES.items():
        choices = getattr(module, list_name) if list_name else FISHYSCAPES_SPLITS
        if field in fields and getattr(cfg, field) not in choices:
            problems.append(f"{field} ({flag}): {getattr(cfg, field)!r} is not one of {', '.join(choices)} "
                            f"(from config.py {_config_py_source(field)})")
    return problems


# ---------------------------------------------------------------- the parsers

class _OneLineParser(argparse.ArgumentParser):
    """Reports a bad flag in one line (not the whole usage) and exits with 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see -h)\n")


def _flag_groups(defaults: RunConfig, module):
    """Every flag, by group name; each script picks the groups it uses."""
    d = defaults

    def cityscapes_root(g, use):
        g.add_argument("--cityscapes_root", default=d.cityscapes_root, help=f"Cityscapes root ({use})")

    def paths(g):
        g.add_argument("--io_root", default=d.io_root, help="root of every output folder")
        g.add_argument("--init_ckpt", default=d.init_ckpt,
                       help="Cityscapes-pretrained weights (default: %(default)s, i.e. <io_root>/weights/<MODEL>.pth)")
        g.add_argument("--weights_dir", default=d.weights_dir,
                       help="OoD-trained checkpoints (default: %(default)s, i.e. <io_root>/meta_ood_<MODEL>/weights)")

    def common(g):
        g.add_argument("-model", "--MODEL", default=d.MODEL, choices=module.MODELS, metavar="MODEL",
                       help=f"network, one of {', '.join(module.MODELS)}")
        g.add_argument("--seed", type=nonnegative_int, default=d.seed, help="random seed")
        g.add_argument("--num_workers", type=nonnegative_int, default=d.num_workers,
                       help="data-loading processes")

    def training(g):
        g.add_argument("-train", "--TRAINSET", default=d.TRAINSET, choices=module.TRAINSETS,
                       metavar="TRAINSET", help=f"training set, one of {', '.join(module.TRAINSETS)}")
        g.add_argument("-epoch", "--training_starting_epoch", type=nonnegative_int,
                       default=d.training_starting_epoch,
                       help="0 starts from --init_ckpt; e > 0 resumes <MODEL>_epoch_<e>_alpha_<alpha>.pth")
        g.add_argument("-nepochs", "--num_training_epochs", type=nonnegative_int,
                       default=d.num_training_epochs, help="epochs to train")
        g.add_argument("-lr", "--learning_rate", type=positive_float, default=d.learning_rate,
                       help="Adam learning rate")
        g.add_argument("-crop", "--crop_size", type=positive_int, default=d.crop_size,
                       help="side of the random square training crop")
        g.add_argument("-batch", "--batch_size", type=positive_int, default=d.batch_size,
                       help="images per batch (per process under torchrun)")
        g.add_argument("--ood_subsampling_factor", type=fraction_value,
                       default=d.ood_subsampling_factor,
                       help="COCO images per epoch, as a share of the Cityscapes images")
        cityscapes_root(g, "training images")
        g.add_argument("--coco_root", default=d.coco_root, help="COCO root, ending in the year")
        g.add_argument("--no_init_ckpt", action="store_true",
                       help="start from random weights instead of --init_ckpt (only with -epoch 0)")
        g.add_argument("--coco_background_void", action="store_true",
                       help="treat COCO background as void; default trains it as road (as the paper)")
        g.add_argument("--amp", default=d.amp, choices=["none", "bf16"], help="mixed precision")
        g.add_argument("--max_iters", type=nonnegative_int, default=d.max_iters,
                       help="stop each epoch after this many iterations (0: the whole epoch)")

    def alpha(g):
        g.add_argument("-alpha", "--pareto_alpha", type=alpha_value, default=d.pareto_alpha,
                       help="weight of the entropy term, in [0, 1]")

    def evaluation_set(g):
        g.add_argument("-val", "--VALSET", default=d.VALSET, choices=module.VALSETS, metavar="VALSET",
                       help=f"evaluation set, one of {', '.join(module.VALSETS)}")
        g.add_argument("-epoch", "--val_epoch", type=nonnegative_int, default=d.val_epoch,
                       help="OoD-training epoch to evaluate; 0 is the baseline (--init_ckpt)")
        g.add_argument("-threshold", "--entropy_threshold", type=threshold_value,
                       default=d.entropy_threshold, help="normalized entropy above which a pixel is OoD")
        g.add_argument("-batch", "--inference_batch_size", type=positive_int, default=d.inference_batch_size,
                       help="full-resolution images per inference batch")
        g.add_argument("--lostandfound_root", default=d.lostandfound_root, help="LostAndFound root")
        g.add_argument("--fishyscapes_root", default=d.fishyscapes_root, help="Fishyscapes root")
        g.add_argument("--fishyscapes_split", default=d.fishyscapes_split, choices=FISHYSCAPES_SPLITS,
                       help="Fishyscapes split")

    def meta(g):
        g.add_argument("-prepare", "--pre_process", action="store_true",
                       help="stage 1: write the softmax outputs (probs files)")
        g.add_argument("-segment", "--segment_search", action="store_true",
                       help="stage 2: segment metrics of every image")
        g.add_argument("-removal", "--fp_removal", action="store_true",
                       help="stage 3: meta classifier and false-positive removal")
        g.add_argument("--store_logits", action="store_true",
                       help="also store the logits in the probs files (max-logit, energy scores)")

    def evaluate(g):
        g.add_argument("-pixel", "--pixel_eval", action="store_true", help="pixel-level OoD metrics")
        g.add_argument("-segment", "--segment_eval", action="store_true", help="segment-level FP/FN counts")
        g.add_argument("-miou", "--miou", action="store_true",
                       help="in-distribution mIoU on the Cityscapes val split")
        g.add_argument("--score", default=d.score, choices=list(SCORE_RANGES),
                       help="pixel OoD score (maxlogit and energy need --store_logits probs)")
        g.add_argument("--bins", type=positive_int, default=d.bins,
                       help="histogram bins of the exact protocol")
        g.add_argument("--panels", type=nonnegative_int, default=d.panels,
                       help="per-image picture panels to draw")
        cityscapes_root(g, "for -miou")

    def meta_classifier(g):
        # Imported here: sklearn takes a second to load, and only the scripts with --cv use it.
        from src.meta_classifier import CV_SCHEMES
        g.add_argument("--segment_workers", type=positive_int, default=d.segment_workers,
                       help="processes for the segment search")
        g.add_argument("--cv", default=d.cv, choices=CV_SCHEMES,
                       help="meta classifier validation: leave one segment out (paper), "
                            "leave one image out, or k folds")
        g.add_argument("--folds", type=positive_int, default=d.folds, help="folds for --cv kfold")

    return {"paths": paths, "common": common, "training": training, "alpha": alpha,
            "evaluation_set": evaluation_set, "meta": meta, "evaluate": evaluate,
            "meta_classifier": meta_classifier}


SCRIPT_GROUPS = {
    "ood_training": ["common", "training", "alpha", "paths"],
    "meta_classification": ["common", "evaluation_set", "alpha", "meta", "meta_classifier", "paths"],
    # evaluation.py runs the segment search and the meta classifier when their outputs are missing
    "evaluation": ["common", "evaluation_set", "alpha", "evaluate", "meta_classifier", "paths"],
}


def build_parser(script: str, defaults: RunConfig, module=user_config) -> argparse.ArgumentParser:
    parser = _OneLineParser(prog=f"{script}.py",
                            description="Defaults come from config.py; flags override them for this run.",
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    groups = _flag_groups(defaults, module)
    for name in SCRIPT_GROUPS[script]:
        groups[name](parser.add_argument_group(name.replace("_", " ")))
    return parser


def parse_run_config(script: str, argv=None, module=user_config) -> RunConfig:
    """config.py's defaults with this run's flags applied; exits 2 on invalid values."""
    try:
        defaults = default_config(module)
    except ConfigError as err:
        _OneLineParser(prog=f"{script}.py").exit(2, f"{script}.py: error: {err}\n")
    parser = build_parser(script, defaults, module)
    args = vars(parser.parse_args(sys.argv[1:] if argv is None else argv))
    cfg = dataclasses.replace(defaults, **args)
    problems = config_problems(cfg, args, module)  # only the settings this script has
    if problems:
        parser.error("; ".join(problems))
    if cfg.no_init_ckpt and cfg.training_starting_epoch > 0:
        parser.error("--no_init_ckpt only applies to -epoch 0 (a resumed run loads its checkpoint)")
    return cfg


def init_ckpt_path(cfg: RunConfig) -> str:
    return cfg.init_ckpt or os.path.join(cfg.io_root, "weights", f"{cfg.MODEL}.pth")
