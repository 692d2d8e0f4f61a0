"""Evaluation (docs/METHOD.md §6), the stages behind evaluation.py.

For the baseline (epoch 0) and the OoD-trained network (cfg.val_epoch) on cfg.VALSET:
  pixel     histograms of the OoD score over in-distribution and OoD pixels -> AUROC, FPR95, AUPRC
            (paper and exact protocol); plots of the histograms and of the ROC / PR curves
  segment   FP / FN segment counts before and after meta classification, and the
            SegmentMeIfYouCan component metrics (sIoU, PPV, F1) of the same predictions
  miou      19-class mIoU of both networks on the Cityscapes val split
Whatever an evaluation needs and is missing (the prepare stage's outputs, segment search, meta
classifier) is computed first. A re-run reads back or skips what exists: those, the score
histograms, the mIoU of each network and the per-image panels; it writes the summaries again (the
results file and table, the score-histogram and ROC / PR plots). Under torchrun the network stages
(prepare, mIoU) share the images between the processes; the rest runs on the first process.
"""
import dataclasses
import logging
import math
import os

import numpy as np

from src import paths
from src.atomic import (atomic_path, read_json, read_npz, remove_stale_temporaries, unusable, write_csv, write_json,
                        write_npz)
from src.component_metrics import ComponentAccumulator, map_component_scores
from src.dataset import DATASETS, build_dataset
from src.distributed import current_process, own_share, summed
from src.errors import MetaOodError
from src.formatting import percent
from src.fp_removal import remove_false_positives, removed_segments
from src.image_outputs import has_outputs, image_histograms, image_indices, labels, panel_score, run_histograms
from src.inference import network_at_epoch, network_outputs, prepare_images
from src.meta_classifier import MetaClassifierResult, per_image, uncovered_counts
from src.miou import class_ious, confusion_matrix, mean_iou
from src.pixel_metrics import PROTOCOLS
from src.plots import plot_image_panel, plot_roc_pr, plot_score_histograms
from src.run_log import progress
from src.scores import SCORE_RANGES
from src.segment_files import read_components
from src.segment_search import run_segment_search

logger = logging.getLogger(__name__)

RUN_LABELS = {"baseline": "baseline", "trained": "entropy training", "meta": "+ meta classification"}


def _baseline_available(cfg) -> bool:
    """Whether the baseline can be shown beside the evaluated epoch: its checkpoint or its outputs exist."""
    return os.path.exists(paths.init_ckpt_path(cfg)) or has_outputs(cfg, 0)


def evaluated_epochs(cfg):
    """{'baseline': 0, 'trained': cfg.val_epoch}: the epoch asked for, and the baseline beside it when its
    checkpoint or outputs exist (only the baseline when val_epoch is 0)."""
    if cfg.val_epoch == 0:
        return {"baseline": 0}
    if not _baseline_available(cfg):
        logger.info("baseline not evaluated: neither its checkpoint %s nor its outputs (%s, %s) exist",
                    paths.init_ckpt_path(cfg), paths.compact_dir(cfg, 0), paths.probs_dir(cfg, 0))
        return {"trained": cfg.val_epoch}
    return {"baseline": 0, "trained": cfg.val_epoch}


def meta_network(runs) -> str:
    """The run meta classification is applied to: the trained network, or the baseline alone (epoch 0).
    Its pixel scores and mIoU are those of that network: it removes segments, not pixels."""
    return "trained" if "trained" in runs else "baseline"


# ---------------------------------------------------------------- pixel level

HISTOGRAM_ARRAYS = ("edges", "in", "out")  # saved as <protocol>_<array>
HISTOGRAMS = "score histograms (for paper and exact: float64 edges (n + 1,), int64 counts in and out (n,))"
HISTOGRAMS_RERUN = "evaluation.py -pixel (with the same settings)"


def _read_histograms(path):
    """{protocol: (edges, counts_in, counts_out)} as score_histograms saved them at `path`, checked."""
    arrays = read_npz(path, HISTOGRAMS, HISTOGRAMS_RERUN)
    names = [f"{p}_{k}" for p in PROTOCOLS for k in HISTOGRAM_ARRAYS]
    if sorted(arrays) != sorted(names):
        raise unusable(path, f"arrays {', '.join(arrays) or 'none'}", HISTOGRAMS, HISTOGRAMS_RERUN)
    histograms = {p: tuple(arrays[f"{p}_{k}"] for k in HISTOGRAM_ARRAYS) for p in PROTOCOLS}
    for protocol, (edges, *counts) in histograms.items():
        if not (edges.dtype == np.float64 and all(c.dtype == np.int64 for c in counts)
                and edges.ndim == 1 and all(c.shape == (edges.size - 1,) for c in counts)):
            found = ", ".join(f"{a.dtype} {a.shape}" for a in (edges, *counts))
            raise unusable(path, f"{protocol} edges, counts in and out {found}", HISTOGRAMS, HISTOGRAMS_RERUN)
    return histograms


def score_histograms(cfg, epoch):
    """{'paper': (edges, counts_in, counts_out), 'exact': ...} of the score over the set (cached), from
    each image's share (src/image_outputs.py), added in image order."""
    path = paths.histograms_file(cfg, epoch)
    if os.path.exists(path):
        return _read_histograms(path)
    histograms = run_histograms(cfg)
    for i in progress(image_indices(cfg, epoch), desc=f"pixel scores {paths.epoch_pattern(cfg, epoch)}"):
        for protocol, share in image_histograms(cfg, epoch, i).items():
            histograms[protocol].add_image(share)
    histograms.setdefault("paper", histograms["exact"])  # an unbounded score: the paper protocol on the fine grid
    result = {p: (h.edges, h.counts_in, h.counts_out) for p, h in histograms.items()}
    write_npz(path, {f"{p}_{k}": a for p, arrays in result.items() for k, a in zip(HISTOGRAM_ARRAYS, arrays)})
    return result


def pixel_evaluation(cfg):
    """{run: {protocol: {'auroc', 'fpr95', 'auprc'}}} and the histogram / ROC / PR plots."""
    histograms = {run: score_histograms(cfg, epoch) for run, epoch in evaluated_epochs(cfg).items()}
    results = {run: {protocol: PROTOCOLS[protocol](*h[protocol][1:]) for protocol in PROTOCOLS}
               for run, h in histograms.items()}
    title = f"{cfg.MODEL} on {cfg.VALSET}, score: {cfg.score}"
    plot_score_histograms(paths.summary_plot_file(cfg, "score_histograms"),
                          {RUN_LABELS[run]: h["exact"] for run, h in histograms.items()}, title,
                          xlabel=f"OoD score ({cfg.score})")
    plot_roc_pr(paths.summary_plot_file(cfg, "roc_pr"),
                {RUN_LABELS[run]: h["paper"][1:] for run, h in histograms.items()}, title, protocol="paper")
    return results


# ---------------------------------------------------------------- segment level

def meta_classification(cfg, epoch):
    """The saved meta classifier result of `epoch`, after running whatever stage after the prepare stage
    is missing."""
    run_segment_search(cfg, epoch, DATASETS[cfg.VALSET].train_id_out)
    return remove_false_positives(cfg, epoch)


PER_IMAGE_COLUMNS = ("image", "image_file", "in_pixels", "ood_pixels", "void_pixels", "predicted_ood_pixels",
                     "predicted_segments", "gt_segments", "fp_before", "fp_after", "fn_before", "fn_after",
                     "removed_segments")


def image_row(cfg, epoch, index, kept, iou0, before, after) -> dict:
    """The per-image table's row (PER_IMAGE_COLUMNS) of image `index`, whose predicted segments have
    the kept flags `kept` and iou0 values `iou0`; adds its component scores before and after the
    removal to the ComponentAccumulators `before` and `after`."""
    dataset = DATASETS[cfg.VALSET]
    components = read_components(paths.components_file(cfg, epoch, index))
    gt_components = read_components(paths.components_file(cfg, epoch, index, gt=True))
    gt_train, image_path = labels(cfg, epoch, index)
    before.add(*map_component_scores(components, gt_components))
    after.add(*map_component_scores(components, gt_components, kept))
    fn_before, fn_after = uncovered_counts([gt_components], [components], [[np.ones_like(kept)], [kept]], [index])
    return dict(zip(PER_IMAGE_COLUMNS, (
        index, image_path, int(np.count_nonzero(gt_train == dataset.train_id_in)),
        int(np.count_nonzero(gt_train == dataset.train_id_out)), int(np.count_nonzero(gt_train == dataset.void_id)),
        int(np.count_nonzero(components)), len(kept), int(np.abs(gt_components).max(initial=0)),
        int(np.count_nonzero(iou0 == 1)), int(np.count_nonzero((iou0 == 1) & kept)), fn_before, fn_after,
        int(np.count_nonzero(~kept)))))


def _per_image_evaluation(cfg, epoch, saved):
    """SegmentMeIfYouCan summaries of the entropy-threshold prediction and of the meta-classified
    one (the segments of `saved` removed), and the per-image table (CSV, PER_IMAGE_COLUMNS) that
    points to the images where the method fails."""
    result = MetaClassifierResult.from_dict({k: v for k, v in saved.items() if k != "image_ids"})
    iou0_per_image = per_image(np.asarray(result.iou0, np.int64), result.image_index, result.n_images)
    before, after = ComponentAccumulator(), ComponentAccumulator()
    images = list(zip(saved["image_ids"], result.kept_per_image(), iou0_per_image))
    rows = [image_row(cfg, epoch, i, kept, iou0, before, after)
            for i, kept, iou0 in progress(images, desc="component metrics", unit="image")]
    write_csv(paths.per_image_file(cfg, epoch), PER_IMAGE_COLUMNS, rows)
    return before.summary(), after.summary()


def segment_evaluation(cfg):
    """{run: {'fp', 'fn', 'components': SegmentMeIfYouCan summary}} for baseline, trained, meta
    (meta classification of the trained network; of the baseline when val_epoch is 0), plus
    the meta classifier's own scores under 'meta_classifier'."""
    results, classifier = {}, {}
    for run, epoch in evaluated_epochs(cfg).items():
        saved = meta_classification(cfg, epoch)
        classifier[run] = {k: saved[k] for k in ("auroc", "auprc", "accuracy", "n_segments",
                                                 "removed_true_positives", "cv")}
        before, after = _per_image_evaluation(cfg, epoch, saved)
        results[run] = {"fp": saved["fp_before"], "fn": saved["fn_before"], "components": before}
        results[f"{run}_meta"] = {"fp": saved["fp_after"], "fn": saved["fn_after"], "components": after}
        _draw_panels(cfg, epoch, removed_segments(saved))
    results["meta"] = results.pop(f"{meta_network(results)}_meta")
    results["meta_classifier"] = classifier
    return results


def panel_indices(cfg, indices) -> list:
    """The images (indices) that get panels: --panel_images, else the first --panels of `indices`."""
    if not cfg.panel_images:
        return indices[:cfg.panels]
    absent = sorted(set(cfg.panel_images) - set(indices))
    if absent:
        raise MetaOodError(f"--panel_images {','.join(map(str, absent))}: no outputs of these images "
                           f"(the set has {len(indices)}, indices {indices[0]}..{indices[-1]})")
    return list(cfg.panel_images)


def _draw_panels(cfg, epoch, removed):
    """The picture of each panel image (image, truth, score, segments), titled with its file name."""
    indices = panel_indices(cfg, image_indices(cfg, epoch))
    missing = [i for i in indices if not os.path.exists(paths.panel_file(cfg, epoch, i))]
    if not missing:
        return
    # The image comes from the data set, not from the stored image_path: some images are composed
    # (Fishyscapes Static: a Cityscapes image plus an overlay), and output i is item i.
    dataset = build_dataset(cfg.VALSET, cfg)
    for i in progress(missing, desc="panels", unit="image"):
        gt_train, image_path = labels(cfg, epoch, i)
        plot_image_panel(paths.panel_file(cfg, epoch, i), dataset.read_image(i), gt_train, dataset.train_id_in,
                         dataset.train_id_out, panel_score(cfg, epoch, i),
                         read_components(paths.components_file(cfg, epoch, i)), removed[i],
                         f"{os.path.basename(image_path)} ({cfg.VALSET} image {i}), "
                         f"{paths.meta_classifier_name(cfg, epoch)}",
                         score_range=SCORE_RANGES[cfg.score])


# ---------------------------------------------------------------- in-distribution quality

def miou_of_epoch(cfg, epoch):
    """{'miou', 'class_iou'} of the network of `epoch` on the Cityscapes val split (cached). Under
    torchrun every process counts its share of the images and the counts are summed."""
    path = paths.miou_file(cfg, epoch)
    if os.path.exists(path):
        return read_json(path, "an mIoU result", "evaluation.py -miou (with the same settings)",
                         ("miou", "class_iou"))
    dataset = build_dataset("Cityscapes", cfg, split="val")
    proc = current_process()
    model = network_at_epoch(cfg, epoch, dataset.num_classes, proc.device)
    confusion = np.zeros((dataset.num_classes, dataset.num_classes), np.int64)
    for _, logits, gt_train in network_outputs(model, dataset, own_share(range(len(dataset)), proc), cfg,
                                               proc.device, desc="mIoU"):
        confusion += confusion_matrix(logits.argmax(0).cpu().numpy(), gt_train, dataset.num_classes, dataset.void_id)
    confusion = summed(confusion, proc)
    result = {"miou": mean_iou(confusion), "class_iou": _json_safe(class_ious(confusion).tolist())}
    if proc.is_main:
        write_json(path, result)
    return result


def miou_evaluation(cfg):
    results = {run: miou_of_epoch(cfg, epoch) for run, epoch in evaluated_epochs(cfg).items()}
    results["meta"] = results[meta_network(results)]
    return results


# ---------------------------------------------------------------- results

def _json_safe(value):
    """NaN (a mean over nothing) becomes None: JSON has no NaN."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _block(title, columns, rows):
    """A text table: a title line, a header and one line per (label, cells) row with a value."""
    rows = [(label, cells) for label, cells in rows if any(c != "-" for c in cells)]
    if not rows:
        return []
    lines = [title, f"{'':24}" + "".join(f"{c:>9}" for c in columns)]
    return lines + [f"{label:24}" + "".join(f"{c:>9}" for c in cells) for label, cells in rows]


def results_table(results):
    """The printed summary. Main block: pixel metrics (paper protocol), FP/FN segments, mean F1 and
    mIoU, in %; then the exact pixel protocol and the component metrics of the same runs."""
    pixel, segment, miou = (results.get(k, {}) for k in ("pixel", "segment", "miou"))

    def pixel_cells(run, protocol):
        values = pixel.get(meta_network(pixel) if run == "meta" else run, {}).get(protocol, {})
        return [percent(values.get(k)) for k in ("auroc", "fpr95", "auprc")]

    def components(run):
        return segment.get(run, {}).get("components", {})

    runs = [(RUN_LABELS[run], run) for run in ("baseline", "trained", "meta")]
    main = [(label, pixel_cells(run, "paper") + [str(segment.get(run, {}).get(k, "-")) for k in ("fp", "fn")]
             + [percent(components(run).get("mean_f1")), percent(miou.get(run, {}).get("miou"))])
            for label, run in runs]
    exact = [(label, pixel_cells(run, "exact")) for label, run in runs if run != "meta"]
    component = [(label, [percent(components(run).get(k)) for k in ("siou_gt", "ppv", "mean_f1")])
                 for label, run in runs]
    bins = results.get("config", {}).get("bins")
    blocks = [_block("pixel metrics: paper protocol; segments: FP/FN counts; in %",
                     ("AUROC", "FPR95", "AUPRC", "FP", "FN", "mean F1", "mIoU"), main),
              _block(f"pixel metrics, exact protocol ({bins} bins)", ("AUROC", "FPR95", "AUPRC"), exact),
              _block("component metrics (SegmentMeIfYouCan)", ("sIoU gt", "PPV", "mean F1"), component)]
    if not any("baseline" in section for section in (pixel, segment, miou)):
        blocks.append(["baseline: not evaluated (neither its checkpoint --init_ckpt nor its outputs exist)"])
    return "\n\n".join("\n".join(block) for block in blocks if block)


def _written_folders(cfg):
    """The folders the evaluation writes to itself (the stages it runs first clean up their own)."""
    panels = [os.path.dirname(paths.panel_file(cfg, epoch, 0)) for epoch in sorted({0, cfg.val_epoch})]
    return [paths.results_dir(cfg), paths.plots_dir(cfg), os.path.dirname(paths.miou_file(cfg, 0)), *panels]


def evaluate(cfg, pixel=True, segment=True, miou=False):
    """Runs the chosen evaluations and saves their numbers with this run's configuration; the
    sections of the other evaluations stay as an earlier run saved them (so `-miou` after
    `-pixel -segment` adds the mIoU to the table). Returns every saved number (None on the
    processes of a torchrun but the first: they only share the network's work)."""
    main = current_process().is_main
    path = paths.evaluation_file(cfg)
    if main:
        for folder in _written_folders(cfg):
            remove_stale_temporaries(folder)
        results = (read_json(path, "evaluation results", "evaluation.py (with the same settings)")
                   if os.path.exists(path) else {})
    # the network's stages first, on every process
    if pixel or segment:
        for epoch in evaluated_epochs(cfg).values():
            prepare_images(cfg, epoch)
    mious = miou_evaluation(cfg) if miou else None
    if not main:
        return None
    results["config"] = dataclasses.asdict(cfg)
    if pixel:
        results["pixel"] = pixel_evaluation(cfg)
    if segment:
        results["segment"] = segment_evaluation(cfg)
    if miou:
        results["miou"] = mious
    results = _json_safe(results)
    write_json(path, results)
    with atomic_path(paths.table_file(cfg)) as tmp, open(tmp, "w") as f:
        f.write(f"{cfg.MODEL} on {cfg.VALSET}, entropy threshold {cfg.entropy_threshold}, score {cfg.score}\n"
                f"{results_table(results)}\n")
    logger.info("results saved to %s, pictures in %s", path, paths.plots_dir(cfg))
    return results
