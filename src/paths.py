"""Where every output of a run lives (docs/METHOD.md §3, §5): one function per folder or file."""
import os

from src.dataset import DATASETS
from src.settings import RunConfig


def init_ckpt_path(cfg: RunConfig) -> str:
    """The Cityscapes-pretrained start of the training, and the baseline (epoch 0)."""
    return cfg.init_ckpt or os.path.join(cfg.io_root, "weights", f"{cfg.MODEL}.pth")


def model_io_root(cfg: RunConfig) -> str:
    return os.path.join(cfg.io_root, f"meta_ood_{cfg.MODEL}")


def weights_dir(cfg: RunConfig) -> str:
    return cfg.weights_dir or os.path.join(model_io_root(cfg), "weights")


def checkpoint_path(cfg: RunConfig, epoch: int) -> str:
    """The OoD-trained checkpoint after `epoch` epochs at the run's alpha."""
    return os.path.join(weights_dir(cfg), f"{cfg.MODEL}_epoch_{epoch}_alpha_{cfg.pareto_alpha}.pth")


def evaluated_checkpoint(cfg: RunConfig, epoch: int) -> str:
    """The weights evaluated as `epoch`: the init checkpoint for 0 (baseline); for the evaluated epoch
    the file --ckpt names if given (a downloaded checkpoint), else the OoD-trained one."""
    if epoch == 0:
        return init_ckpt_path(cfg)
    return cfg.ckpt if cfg.ckpt and epoch == cfg.val_epoch else checkpoint_path(cfg, epoch)


def loss_record_file(cfg: RunConfig) -> str:
    """The training losses at the run's alpha, per iteration and per epoch (JSON lines)."""
    return os.path.join(weights_dir(cfg), f"{cfg.MODEL}_alpha_{cfg.pareto_alpha}_losses.jsonl")


def eval_name(cfg: RunConfig) -> str:
    """The evaluation set's output folder (its spec): laf_eval, fs_eval (Fishyscapes Static), fs_laf_eval, ..."""
    return DATASETS[cfg.VALSET].spec.output(cfg)


def eval_io_root(cfg: RunConfig) -> str:
    return os.path.join(model_io_root(cfg), eval_name(cfg))


def epoch_pattern(cfg: RunConfig, epoch: int) -> str:
    """`baseline` for epoch 0 (the init checkpoint), else `epoch_<e>_alpha_<alpha>`; `_bf16` appended for a
    network run under bf16 autocast (--amp bf16), whose outputs differ."""
    run = "baseline" if epoch == 0 else f"epoch_{epoch}_alpha_{cfg.pareto_alpha}"
    return run + ("_bf16" if cfg.amp == "bf16" else "")


def probs_dir(cfg: RunConfig, epoch: int) -> str:
    return os.path.join(eval_io_root(cfg), "probs", epoch_pattern(cfg, epoch))


def probs_file(cfg: RunConfig, epoch: int, index: int) -> str:
    return os.path.join(probs_dir(cfg, epoch), f"probs{index}.hdf5")


def compact_dir(cfg: RunConfig, epoch: int) -> str:
    """The compact per-image outputs of the prepare stage (src/compact_file.py), the default instead of probs."""
    return os.path.join(eval_io_root(cfg), "compact", epoch_pattern(cfg, epoch))


def labels_dir(cfg: RunConfig, epoch: int) -> str:
    return os.path.join(compact_dir(cfg, epoch), "labels")


def labels_file(cfg: RunConfig, epoch: int, index: int) -> str:
    """Ground truth and image path of image `index`; it exists once every compact output of the image does."""
    return os.path.join(labels_dir(cfg, epoch), f"{index:04d}.npz")


def score_map_file(cfg: RunConfig, epoch: int, index: int) -> str:
    """The float16 map of the run's score (--score) of image `index`, for the panels."""
    return os.path.join(compact_dir(cfg, epoch), f"score_{cfg.score}", f"{index:04d}.npz")


def image_histograms_file(cfg: RunConfig, epoch: int, index: int) -> str:
    """Image `index`'s share of the run's score histograms (--score, --bins)."""
    return os.path.join(compact_dir(cfg, epoch), f"histograms_{cfg.score}_bins{cfg.bins}", f"{index:04d}.npz")


def metaseg_dir(cfg: RunConfig) -> str:
    return os.path.join(eval_io_root(cfg), "metaseg_io")


def metaseg_subdir(cfg: RunConfig, epoch: int) -> str:
    """`baseline_t<t>` or `epoch_<e>_alpha_<alpha>_t<t>`."""
    return f"{epoch_pattern(cfg, epoch)}_t{cfg.entropy_threshold}"


def _segments_subdir(cfg: RunConfig, epoch: int, gt: bool, no_void: bool) -> str:
    return metaseg_subdir(cfg, epoch) + ("_gt" if gt else "") + ("_novoid" if no_void else "")


def metrics_file(cfg: RunConfig, epoch: int, index: int, gt: bool = False, no_void: bool = False) -> str:
    """Metrics of the predicted (gt: ground-truth) segments of image `index`; no_void: of the predicted
    segments searched with no pixel void, for the submission's meta classifier (src/submission.py)."""
    return os.path.join(metaseg_dir(cfg), "metrics", _segments_subdir(cfg, epoch, gt, no_void), f"{index:04d}.npz")


def components_file(cfg: RunConfig, epoch: int, index: int, gt: bool = False, no_void: bool = False) -> str:
    return os.path.join(metaseg_dir(cfg), "components", _segments_subdir(cfg, epoch, gt, no_void),
                        f"{index:04d}.npz")


def cv_name(cfg: RunConfig) -> str:
    """The meta classifier's cross-validation: `loo`, `image`, or `kfold<k>_seed<s>` (what its folds depend on)."""
    return f"kfold{cfg.folds}_seed{cfg.seed}" if cfg.cv == "kfold" else cfg.cv


def meta_classifier_name(cfg: RunConfig, epoch: int) -> str:
    """`<metaseg_subdir>_<cv>`."""
    return f"{metaseg_subdir(cfg, epoch)}_{cv_name(cfg)}"


def meta_classifier_file(cfg: RunConfig, epoch: int) -> str:
    """Meta classifier results: scores, per-segment decisions, FP/FN counts."""
    return os.path.join(metaseg_dir(cfg), "meta_classifier", f"{meta_classifier_name(cfg, epoch)}.json")


def results_dir(cfg: RunConfig) -> str:
    return os.path.join(eval_io_root(cfg), "results")


def plots_dir(cfg: RunConfig) -> str:
    return os.path.join(cfg.io_root, "plots", f"{cfg.MODEL}_{eval_name(cfg)}")


def histograms_file(cfg: RunConfig, epoch: int) -> str:
    """Pixel score histograms of the run of `epoch` (.npz)."""
    return os.path.join(results_dir(cfg), f"histograms_{epoch_pattern(cfg, epoch)}_{cfg.score}_bins{cfg.bins}.npz")


def per_image_file(cfg: RunConfig, epoch: int) -> str:
    """Per-image segment counts, FP / FN before and after meta classification, pixel counts (CSV)."""
    return os.path.join(results_dir(cfg), f"per_image_{meta_classifier_name(cfg, epoch)}.csv")


def evaluation_file(cfg: RunConfig) -> str:
    """Every number of an evaluation run, with its configuration (JSON)."""
    return os.path.join(results_dir(cfg), f"evaluation_{epoch_pattern(cfg, cfg.val_epoch)}_"
                                          f"t{cfg.entropy_threshold}_{cfg.score}.json")


def table_file(cfg: RunConfig) -> str:
    """The printed summary of an evaluation run (text)."""
    return os.path.splitext(evaluation_file(cfg))[0] + ".txt"


def summary_plot_file(cfg: RunConfig, kind: str) -> str:
    """`<kind>_<run>_<score>.png` in the plots folder; <run> is the evaluated epoch's pattern, as the
    plot compares the baseline with that epoch."""
    return os.path.join(plots_dir(cfg), f"{kind}_{epoch_pattern(cfg, cfg.val_epoch)}_{cfg.score}.png")


def panel_file(cfg: RunConfig, epoch: int, index: int) -> str:
    """`<run>_t<t>_<cv>/image_<i>_<score>.png` in the plots folder: the panel shows the segments the
    entropy threshold found and those the meta classifier removed, so both are in the name."""
    return os.path.join(plots_dir(cfg), meta_classifier_name(cfg, epoch), f"image_{index:04d}_{cfg.score}.png")


def miou_file(cfg: RunConfig, epoch: int) -> str:
    """In-distribution mIoU of the network of `epoch` on the Cityscapes val split (JSON)."""
    return os.path.join(model_io_root(cfg), "miou", f"cityscapes_val_{epoch_pattern(cfg, epoch)}.json")


def submission_root(cfg: RunConfig) -> str:
    """The SegmentMeIfYouCan submission folder, to archive and upload as it is: <io_root>/smiyc_submission/anomaly_p."""
    return os.path.join(cfg.io_root, "smiyc_submission", "anomaly_p")


def submission_methods(cfg: RunConfig, epoch: int) -> tuple:
    """(method of the run's score, method of its meta-classified score): --submission_name, default
    `MetaOoD_<MODEL>_<run>_<score>`, and that name plus `_meta_t<t>_<cv>`. A re-run skips the files that
    exist, so the default names hold every setting their values depend on."""
    name = cfg.submission_name or f"MetaOoD_{cfg.MODEL}_{epoch_pattern(cfg, epoch)}_{cfg.score}"
    return name, f"{name}_meta_t{cfg.entropy_threshold}_{cv_name(cfg)}"


def submission_file(cfg: RunConfig, method: str, dataset_name: str, frame_id: str) -> str:
    """anomaly_p/<method>/<data set name>/<frame id>.hdf5, the benchmark's name of a frame's file."""
    return os.path.join(submission_root(cfg), method, dataset_name, f"{frame_id}.hdf5")

def identity_file(folder: str) -> str:
    """The record of the inputs each cached output in `folder` was computed from (src/provenance.py)."""
    return os.path.join(folder, "identity.json")


def weights_hash_cache(cfg: RunConfig) -> str:
    """The sha256 digests of the checkpoint files hashed so far, by path, size and mtime (JSON)."""
    return os.path.join(cfg.io_root, "cache", "weights_sha256.json")


def log_file(cfg: RunConfig, script: str, stamp: str) -> str:
    """The log of one script run, named by the script and its start time."""
    return os.path.join(cfg.io_root, "logs", f"{script}_{stamp}.log")
