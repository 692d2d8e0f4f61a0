"""A run's configuration: every setting declared once, in SETTINGS.

A `Setting` says where its default lives in config.py (a variable, a key of `params`, or
nowhere for flag-only settings), its flags, the scripts that accept them, its type and check,
and its help text. The parsers, the check of config.py's values and the fields of the run
configuration are all derived from that one list; the root of each data set and the
setting that picks its split come from the data set registry (src/dataset/__init__.py).

`parse_run_config(script, argv)` is the one place where flags meet the defaults. It returns
a new frozen RunConfig; config.py is never modified. Invalid values end the script with exit
status 2 and a one-line message. config.py is read from the repository, or from the file that
the environment variable META_OOD_CONFIG names (the tests use their own fixed one).
"""
import argparse
import dataclasses
import importlib.util
import os
import re
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Optional

from src.errors import MetaOodError

SCRIPTS = TRAIN, META, EVAL = ("ood_training", "meta_classification", "evaluation")
INFERENCE = (META, EVAL)
REPOSITORY = Path(__file__).resolve().parents[1]
CONFIG_VARIABLE = "META_OOD_CONFIG"


class ConfigError(MetaOodError):
    """config.py lacks a setting, has one that is not known, or cannot be read."""


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
at_least_two = _checked(int, lambda n: n >= 2, "an integer >= 2")


def index_list(text):
    """Comma-separated image indices >= 0, as a tuple."""
    try:
        indices = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if min(indices) < 0:
        raise argparse.ArgumentTypeError(f"expected indices >= 0, got {text}")
    return indices


def method_name(text):
    """A SegmentMeIfYouCan method name: one folder name of letters, digits and . _ + -."""
    if not re.fullmatch(r"[A-Za-z0-9._+-]+", text) or text in (".", ".."):
        raise argparse.ArgumentTypeError(f"expected a folder name of letters, digits and . _ + -, got {text!r}")
    return text


def _optional_path(text):
    """A path, or None for the empty string (argparse cannot pass None itself)."""
    return text or None


# ---------------------------------------------------------------- the declarations

@dataclass(frozen=True)
class Setting:
    """One setting of a run: the RunConfig field `name` and everything about it."""
    name: str
    help: str                      # what a value changes and when to change it
    scripts: tuple                 # the scripts whose command line accepts it
    flags: tuple = ()              # default: --<name>
    config: Optional[str] = None   # config.py variable, "params" for a key of params, None: flag only
    default: Any = None            # of a flag-only setting (or of an optional config.py variable)
    check: Optional[Callable] = None   # argparse type: converts and checks the value
    choices: Optional[Callable] = None  # () -> allowed values, read when a parser is built
    switch: bool = False           # a flag without value that sets True
    optional: bool = False         # config.py may leave it out (then `default`)

    @property
    def option_strings(self) -> tuple:
        return self.flags or (f"--{self.name}",)

    def source(self) -> str:
        """Where config.py sets it."""
        return f"params[{self.name!r}]" if self.config == "params" else self.config


def _model_names():
    from src.model import NETWORKS
    return list(NETWORKS)


def _training_sets():
    from src.dataset import training_sets
    return training_sets()


def _evaluation_sets():
    from src.dataset import evaluation_sets
    return evaluation_sets()


def _cv_schemes():
    from src.meta_classifier import CV_SCHEMES  # sklearn loads in a second: only when a parser needs it
    return list(CV_SCHEMES)


def _score_names():
    from src.scores import SCORE_RANGES
    return list(SCORE_RANGES)


S = Setting
_DECLARED = [
    # what runs on what
    S("MODEL", "network; every output path names it", SCRIPTS, ("-model", "--model", "--MODEL"), "MODEL",
      choices=_model_names),
    S("TRAINSET", "training set (ID images plus the OoD proxy)", SCRIPTS, ("-train", "--train", "--TRAINSET"),
      "TRAINSET", choices=_training_sets),
    S("VALSET", "evaluation set; each has its own output folder", INFERENCE, ("-val", "--val", "--VALSET"),
      "VALSET", choices=_evaluation_sets),
    # paths
    S("io_root", "root of every output folder; use one per experiment series", SCRIPTS, (), "IO_ROOT",
      check=str),
    S("init_ckpt", "Cityscapes-pretrained weights the training starts from and the baseline (epoch 0) is; "
      "default <io_root>/weights/<MODEL>.pth", SCRIPTS, (), "INIT_CKPT", check=_optional_path),
    S("weights_dir", "folder of the OoD-trained checkpoints; default <io_root>/meta_ood_<MODEL>/weights",
      SCRIPTS, (), "WEIGHTS_DIR", check=_optional_path),
    S("ckpt", "evaluate this checkpoint file as epoch -epoch, e.g. a downloaded OoD-trained one, instead of "
      "<weights_dir>/<MODEL>_epoch_<e>_alpha_<a>.pth", INFERENCE, ("--ckpt",), check=_optional_path),
    # training (docs/METHOD.md §2)
    S("training_starting_epoch", "0 starts from --init_ckpt; e > 0 resumes <MODEL>_epoch_<e>_alpha_<alpha>.pth",
      (TRAIN,), ("-epoch", "--epoch", "--training_starting_epoch"), "params", check=nonnegative_int),
    S("num_training_epochs", "epochs to train (the paper's checkpoints: 4)", (TRAIN,),
      ("-nepochs", "--nepochs", "--num_training_epochs"), "params", check=nonnegative_int),
    S("pareto_alpha", "weight of the entropy term: 0 is plain cross-entropy, the paper uses 0.9; part of "
      "every checkpoint and output name", SCRIPTS, ("-alpha", "--alpha", "--pareto_alpha"), "params",
      check=alpha_value),
    S("ood_subsampling_factor", "COCO images per epoch, as a share of the Cityscapes images", (TRAIN,), (),
      "params", check=fraction_value),
    S("learning_rate", "Adam learning rate; lower it if the in-distribution mIoU drops", (TRAIN,),
      ("-lr", "--lr", "--learning_rate"), "params", check=positive_float),
    S("crop_size", "side of the random square training crop; smaller saves GPU memory", (TRAIN,),
      ("-crop", "--crop", "--crop_size"), "params", check=positive_int),
    S("batch_size", "training images per batch, per process under torchrun", (TRAIN,),
      ("-batch", "--batch", "--batch_size"), "params", check=positive_int),
    S("no_init_ckpt", "start from random weights instead of --init_ckpt (only with -epoch 0)", (TRAIN,),
      switch=True, default=False),
    S("restart", "train from -epoch again, first deleting this run's checkpoints of later epochs (a re-run "
      "otherwise continues after the last one, and refuses one trained from other weights, data or settings)",
      (TRAIN,), switch=True, default=False),
    S("coco_background_void", "treat COCO background as void; the default trains it as road, as the paper",
      (TRAIN,), switch=True, default=False),
    S("amp", "bf16 autocast of the network's forward (and backward) pass, in training and inference; the "
      "outputs of a bf16 evaluation are named <run>_bf16", SCRIPTS, default="none", choices=lambda: ["none", "bf16"]),
    S("max_iters", "stop each epoch after this many iterations (0: the whole epoch); for quick trials",
      (TRAIN,), default=0, check=nonnegative_int),
    # evaluation sets (docs/METHOD.md §3-§6)
    S("val_epoch", "OoD-training epoch to evaluate; 0 is the baseline (--init_ckpt)", INFERENCE,
      ("-epoch", "--epoch", "--val_epoch"), "params", check=nonnegative_int),
    S("entropy_threshold", "normalized entropy above which a pixel is OoD; part of the segment output names",
      INFERENCE, ("-threshold", "--threshold", "--entropy_threshold"), "params", check=threshold_value),
    S("inference_batch_size", "full-resolution images per inference batch, per process under torchrun",
      INFERENCE, ("-batch", "--batch", "--inference_batch_size"), "INFERENCE_BATCH_SIZE", check=positive_int),
    S("pre_process", "stage 1: write the softmax outputs (probs files)", (META,),
      ("-prepare", "--prepare", "--metaseg_prepare", "--pre_process"), switch=True, default=False),
    S("segment_search", "stage 2: segment metrics of every image", (META,),
      ("-segment", "--segment", "--segment_search"), switch=True, default=False),
    S("fp_removal", "stage 3: meta classifier and false-positive removal", (META,),
      ("-removal", "--removal", "--fp_removal"), switch=True, default=False),
    S("store_probs", "keep each image's whole float32 softmax in a probs file (the reference's layout, 160 MB "
      "per 1024x2048 image) instead of the compact outputs (about 4.3 MB): for other tools, or to change "
      "-threshold, --score or --bins later without running the network again", INFERENCE, switch=True,
      default=False),
    S("store_logits", "also store the logits in the probs files of --store_probs (for --score maxlogit / "
      "energy)", INFERENCE, switch=True, default=False),
    S("segment_workers", "processes for the segment search (and the meta classifier's fits)", INFERENCE, (),
      "SEGMENT_WORKERS", check=positive_int),
    S("cv", "meta classifier validation: leave one segment out (paper), leave one image out, or k folds",
      INFERENCE, default="loo", choices=_cv_schemes),
    S("folds", "folds of --cv kfold", INFERENCE, default=5, check=at_least_two),
    S("pixel_eval", "pixel-level OoD metrics", (EVAL,), ("-pixel", "--pixel", "--pixel_eval"), switch=True,
      default=False),
    S("segment_eval", "segment-level FP/FN counts and component metrics", (EVAL,),
      ("-segment", "--segment", "--segment_eval"), switch=True, default=False),
    S("miou", "in-distribution mIoU on the Cityscapes val split", (EVAL,), ("-miou", "--miou"), switch=True,
      default=False),
    S("smiyc_eval", "SegmentMeIfYouCan protocol on a SMIYC set: pixel AP, FPR95, best F1; sIoU gt, PPV, F1 of "
      "the components at the best-F1 threshold", (EVAL,), ("-smiyc", "--smiyc", "--smiyc_eval"), switch=True,
      default=False),
    S("submission", "write the SegmentMeIfYouCan submission files of the evaluated network (-epoch) on the "
      "SMIYC set's split, test splits included: its score and the meta-classified score", (EVAL,),
      switch=True, default=False),
    S("submission_name", "method name of the submission files; default MetaOoD_<MODEL>_<run>_<score>, the "
      "meta-classified one with _meta_t<t>_<cv> added", (EVAL,), check=method_name),
    S("score", "pixel OoD score (of probs files of --store_probs, maxlogit and energy need them written with "
      "--store_logits)", (EVAL,),
      default="entropy", choices=_score_names),
    S("bins", "histogram bins of the exact pixel protocol; more bins, closer to the exact curve", (EVAL,),
      default=10000, check=at_least_two),
    S("panels", "per-image picture panels to draw (the first N images)", (EVAL,), default=4,
      check=nonnegative_int),
    S("panel_images", "draw the panels of these images instead (probs indices, comma-separated, e.g. the "
      "failing ones of the per-image CSV)", (EVAL,), default=(), check=index_list),
    # everything
    S("seed", "random seed of training, COCO subsets and k-fold splits", SCRIPTS, (), "SEED",
      check=nonnegative_int),
    S("num_workers", "data-loading processes (0: load in the main process)", SCRIPTS, (), "NUM_WORKERS",
      check=nonnegative_int),
]
del S


def dataset_settings() -> list:
    """The root setting of every registered data set (one per root variable: data sets of one download
    share it, described by the first) and the split setting of those that have one."""
    from src.dataset import DATASETS
    settings, roots = [], set()
    for cls in DATASETS.values():
        spec = cls.spec
        if spec.root and spec.root not in roots:
            roots.add(spec.root)
            settings.append(Setting(spec.root.lower(), f"{spec.name} root: {spec.layout}", spec.scripts, (),
                                    spec.root, default=None, check=_optional_path, optional=True))
        if spec.split_setting:
            splits = list(spec.splits)
            settings.append(Setting(spec.split_setting.lower(), f"{spec.name} split", spec.scripts, (),
                                    spec.split_setting, default=splits[0], choices=lambda s=splits: s,
                                    optional=True))
    return settings


def settings() -> list:
    """Every setting: the declared ones and those of the registered data sets."""
    return _DECLARED + dataset_settings()


class RunConfig:
    """The base of every run configuration (a frozen dataclass whose fields are the settings)."""

    def __reduce__(self):  # the class is made at run time: pickle (to worker processes) by its values
        return _rebuilt, (dataclasses.asdict(self),)


@lru_cache(maxsize=None)
def _config_class(names: tuple) -> type:
    return dataclasses.make_dataclass("RunConfig", [(name, Any) for name in names], bases=(RunConfig,),
                                      frozen=True, namespace={"__module__": __name__})


def _rebuilt(values: dict):
    return _config_class(tuple(values))(**values)


def run_config_class() -> type:
    return _config_class(tuple(s.name for s in settings()))


# ---------------------------------------------------------------- config.py

def load_config_module(path=None):
    """config.py as a module: `path`, else $META_OOD_CONFIG, else the repository's."""
    path = Path(path or os.environ.get(CONFIG_VARIABLE) or REPOSITORY / "config.py")
    spec = importlib.util.spec_from_file_location("config", path)
    if spec is None or not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as err:  # a typo in the user's file: say where, not a traceback
        raise ConfigError(f"{path}: cannot be read: {type(err).__name__}: {err}") from err
    return module


def config_name(module) -> str:
    """The config file's path, for messages ("config.py" for a module made in memory)."""
    return getattr(module, "__file__", None) or "config.py"


def _missing_or_unknown(module, declared) -> list:
    """Messages for the settings config.py lacks and the params keys it has that are not known."""
    params = getattr(module, "params", {})
    known = {s.name for s in declared if s.config == "params"}
    missing = [s.source() for s in declared if s.config and not s.optional
               and not (s.name in params if s.config == "params" else hasattr(module, s.config))]
    unknown = [f"params[{key!r}]" for key in params if key not in known]
    messages = []
    if missing:
        messages.append(f"{config_name(module)} lacks {', '.join(missing)}")
    if unknown:
        messages.append(f"{config_name(module)} has unknown {', '.join(unknown)}")
    return messages


def _config_value(module, setting):
    if setting.config == "params":
        return module.params[setting.name]
    if setting.config:
        return getattr(module, setting.config, setting.default)
    return setting.default


def default_config(module=None):
    """The configuration config.py describes, before any flag; ConfigError if a setting is missing or unknown."""
    module = module or load_config_module()
    declared = settings()
    problems = _missing_or_unknown(module, declared)
    if problems:
        raise ConfigError("; ".join(problems))
    return run_config_class()(**{s.name: _config_value(module, s) for s in declared})


def _value_problem(setting, value):
    """Why `value` is not allowed for `setting` (None: it is)."""
    if setting.check in (str, _optional_path):
        if value is None and setting.check is _optional_path:
            return None
        return None if isinstance(value, str) else f"expected a path (a string), got {value!r}"
    if setting.check is not None:
        try:
            setting.check(str(value))
        except argparse.ArgumentTypeError as err:
            return str(err)
    if setting.choices is not None and value not in setting.choices():
        return f"{value!r} is not one of {', '.join(setting.choices())}"
    return None


def config_problems(cfg, script: str) -> list:
    """Messages for the config.py values of the settings `script` uses that are outside their range.

    Flags are checked as they are parsed, so a value found here comes from config.py: the message
    names the setting there and the flag that overrides it.
    """
    problems = []
    for setting in settings():
        if script not in setting.scripts or setting.config is None:
            continue
        problem = _value_problem(setting, getattr(cfg, setting.name))
        if problem:
            flags = "/".join(dict.fromkeys(setting.option_strings[:1] + setting.option_strings[-1:]))
            problems.append(f"{setting.name} ({flags}): {problem} (from config.py {setting.source()})")
    return problems


# ---------------------------------------------------------------- the parsers

class OneLineParser(argparse.ArgumentParser):
    """Reports a bad flag in one line (not the whole usage) and exits with 2; no abbreviations."""

    def __init__(self, **kwargs):
        super().__init__(allow_abbrev=False, **kwargs)

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see -h)\n")


def build_parser(script: str, defaults) -> argparse.ArgumentParser:
    """The command line of `script`: a flag for each setting it accepts, defaults from `defaults`."""
    parser = OneLineParser(prog=f"{script}.py",
                            description="Defaults come from config.py; flags override them for this run.",
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    for setting in settings():
        if script not in setting.scripts:
            continue
        kwargs = dict(dest=setting.name, default=getattr(defaults, setting.name), help=setting.help)
        if setting.switch:
            kwargs["action"] = "store_true"
        else:
            if setting.check is not None:
                kwargs["type"] = setting.check
            if setting.choices is not None:
                kwargs["choices"] = setting.choices()
                kwargs["help"] += f"; one of {', '.join(kwargs['choices'])}"
            kwargs["metavar"] = setting.name.upper()
        parser.add_argument(*setting.option_strings, **kwargs)
    return parser


def _combination_problems(cfg, script) -> list:
    """Flags that are fine alone but not together (checked before any work)."""
    problems = []
    if script == TRAIN and cfg.no_init_ckpt and cfg.training_starting_epoch > 0:
        problems.append("--no_init_ckpt only applies to -epoch 0 (a resumed run loads its checkpoint)")
    if script in INFERENCE and cfg.ckpt and cfg.val_epoch == 0:
        problems.append("--ckpt names the evaluated OoD-trained checkpoint: use it with -epoch E > 0 "
                        "(epoch 0 is --init_ckpt)")
    return problems


def parse_run_config(script: str, argv=None, module=None):
    """config.py's defaults with this run's flags applied; exits 2 on invalid values."""
    try:
        defaults = default_config(module)
    except ConfigError as err:
        OneLineParser(prog=f"{script}.py").exit(2, f"{script}.py: error: {err}\n")
    parser = build_parser(script, defaults)
    args = vars(parser.parse_args(sys.argv[1:] if argv is None else argv))
    cfg = dataclasses.replace(defaults, **args)
    problems = config_problems(cfg, script) + _combination_problems(cfg, script)
    if problems:
        parser.error("; ".join(problems))
    return cfg

