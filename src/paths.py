"""Where every output of a run lives (docs/METHOD.md §3, §5): one function per folder or file."""
import os

from src.settings import RunConfig

EVAL_SUBDIRS = {"LostAndFound": "laf_eval", "Fishyscapes": "fs_eval"}
FISHYSCAPES_LAF_SUBDIR = "fs_laf_eval"  # fs_eval is the reference's name of the Static split


def model_io_root(cfg: RunConfig) -> str:
    return os.path.join(cfg.io_root, f"meta_ood_{cfg.MODEL}")


def weights_dir(cfg: RunConfig) -> str:
    return cfg.weights_dir or os.path.join(model_io_root(cfg), "weights")


def checkpoint_path(cfg: RunConfig, epoch: int) -> str:
    """The OoD-trained checkpoint after `epoch` epochs at the run's alpha."""
    return os.path.join(weights_dir(cfg), f"{cfg.MODEL}_epoch_{epoch}_alpha_{cfg.pareto_alpha}.pth")


def eval_name(cfg: RunConfig) -> str:
    """laf_eval, fs_eval (Fishyscapes Static) or fs_laf_eval (Fishyscapes LostAndFound)."""
    if cfg.VALSET == "Fishyscapes" and cfg.fishyscapes_split == "LostAndFound":
        return FISHYSCAPES_LAF_SUBDIR
    return EVAL_SUBDIRS[cfg.VALSET]


def eval_io_root(cfg: RunConfig) -> str:
    return os.path.join(model_io_root(cfg), eval_name(cfg))


def epoch_pattern(cfg: RunConfig, epoch: int) -> str:
    """`baseline` for epoch 0 (the init checkpoint), else `epoch_<e>_alpha_<alpha>`."""
    return "baseline" if epoch == 0 else f"epoch_{epoch}_alpha_{cfg.pareto_alpha}"


def probs_dir(cfg: RunConfig, epoch: int) -> str:
    return os.path.join(eval_io_root(cfg), "probs", epoch_pattern(cfg, epoch))


def probs_file(cfg: RunConfig, epoch: int, index: int) -> str:
    return os.path.join(probs_dir(cfg, epoch), f"probs{index}.hdf5")


def metaseg_dir(cfg: RunConfig) -> str:
    return os.path.join(eval_io_root(cfg), "metaseg_io")


def metaseg_subdir(cfg: RunConfig, epoch: int) -> str:
    """`baseline_t<t>` or `epoch_<e>_alpha_<alpha>_t<t>`."""
    return f"{epoch_pattern(cfg, epoch)}_t{cfg.entropy_threshold}"


def metrics_file(cfg: RunConfig, epoch: int, index: int, gt: bool = False) -> str:
    sub = metaseg_subdir(cfg, epoch) + ("_gt" if gt else "")
    return os.path.join(metaseg_dir(cfg), "metrics", sub, f"{index:04d}.npz")


def components_file(cfg: RunConfig, epoch: int, index: int, gt: bool = False) -> str:
    sub = metaseg_subdir(cfg, epoch) + ("_gt" if gt else "")
    return os.path.join(metaseg_dir(cfg), "components", sub, f"{index:04d}.npz")


def meta_classifier_name(cfg: RunConfig, epoch: int) -> str:
    """`<metaseg_subdir>_<cv>`; kfold also names what its folds depend on: `..._kfold<k>_seed<s>`."""
    cv = f"kfold{cfg.folds}_seed{cfg.seed}" if cfg.cv == "kfold" else cfg.cv
    return f"{metaseg_subdir(cfg, epoch)}_{cv}"


def meta_classifier_file(cfg: RunConfig, epoch: int) -> str:
    """Meta classifier results: scores, per-segment decisions, FP/FN counts."""
    return os.path.join(metaseg_dir(cfg), "meta_classifier", f"{meta_classifier_name(cfg, epoch)}.json")


def results_dir(cfg: RunConfig) -> str:
    return os.path.join(eval_io_root(cfg), "results")


def plots_dir(cfg: RunConfig) -> str:
    return os.path.join(cfg.io_root, "plots", f"{cfg.MODEL}_{eval_name(cfg)}")
