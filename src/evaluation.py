"""Evaluation (docs/METHOD.md §6), the stages behind evaluation.py.

For the baseline (epoch 0) and the OoD-trained network (cfg.val_epoch) on cfg.VALSET:
  pixel     histograms of the OoD score over in-distribution and OoD pixels -> AUROC, FPR95, AUPRC
            (paper and exact protocol); plots of the histograms and of the ROC / PR curves
  segment   FP / FN segment counts before and after meta classification, and the
            SegmentMeIfYouCan component metrics (sIoU, PPV, F1) of the same predictions
  miou      19-class mIoU of both networks on the Cityscapes val split
Whatever an evaluation needs and is missing (probs files, segment search, meta classifier)
is computed first. A re-run reads back or skips what exists: those, the score histograms, the
mIoU of each network and the per-image panels; it writes the summaries again (the results
file and table, the score-histogram and ROC / PR plots).
"""
import dataclasses
import logging
import math
import os

import numpy as np
from tqdm import tqdm

from src import paths
from src.atomic import atomic_path, read_json, read_npz, remove_stale_temporaries, unusable, write_json, write_npz
from src.component_metrics import ComponentAccumulator
from src.dataset import DATASETS, build_dataset
from src.dataset.base import read_rgb
from src.fp_removal import remove_false_positives, removed_segments
from src.inference import default_device, network_at_epoch, network_outputs, write_probs
from src.miou import class_ious, confusion_matrix, mean_iou
from src.pixel_metrics import PAPER_BINS, PROTOCOLS, ScoreHistogram, pixel_scores
from src.plots import plot_image_panel, plot_roc_pr, plot_score_histograms
from src.scores import SCORE_RANGES, SCORES, score_map
from src.segment_files import read_components
from src.segment_search import probs_indices, read_probs, run_segment_search

logger = logging.getLogger(__name__)

RUN_LABELS = {"baseline": "baseline", "trained": "entropy training", "meta": "+ meta classification"}


def evaluated_epochs(cfg):
    """{'baseline': 0, 'trained': cfg.val_epoch} (only the baseline when val_epoch is 0)."""
    return {"baseline": 0} if cfg.val_epoch == 0 else {"baseline": 0, "trained": cfg.val_epoch}


# The probs-file dataset behind each input of src.scores.SCORES.
SCORE_DATASETS = {"probs": "probabilities", "logits": "logits"}


def _score_and(cfg, path, *names):
    """(score map, *datasets `names`) of one probs file; of probabilities and logits only the one
    the score needs is read (each is C times the size of a map)."""
    source = SCORES[cfg.score][1]
    array, *rest = read_probs(path, (SCORE_DATASETS[source], *names))
    return (score_map(cfg.score, **{source: array}), *rest)


# ---------------------------------------------------------------- pixel level

def _histograms_file(cfg, epoch):
    return os.path.join(paths.results_dir(cfg), f"histograms_{paths.epoch_pattern(cfg, epoch)}_"
                                                f"{cfg.score}_bins{cfg.bins}.npz")


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
    """{'paper': (edges, counts_in, counts_out), 'exact': ...} of the score over the set (cached)."""
    path = _histograms_file(cfg, epoch)
    if os.path.exists(path):
        return _read_histograms(path)
    write_probs(cfg, epoch)
    value_range = SCORE_RANGES[cfg.score]
    histograms = {"paper": ScoreHistogram(PAPER_BINS, value_range) if value_range else None,
                  "exact": ScoreHistogram(cfg.bins, value_range)}
    dataset = DATASETS[cfg.VALSET]
    for i in tqdm(probs_indices(cfg, epoch), desc=f"pixel scores {paths.epoch_pattern(cfg, epoch)}"):
        score, gt_train = _score_and(cfg, paths.probs_file(cfg, epoch, i), "gt_train_ids")
        values = pixel_scores(score, gt_train, dataset.train_id_in, dataset.train_id_out)
        for histogram in filter(None, histograms.values()):
            histogram.add(*values)
    # The paper protocol is defined on 100 bins of a bounded score; an unbounded one gets the fine grid.
    histograms["paper"] = histograms["paper"] or histograms["exact"]
    result = {p: (h.edges, h.counts_in, h.counts_out) for p, h in histograms.items()}
    write_npz(path, {f"{p}_{k}": a for p, arrays in result.items() for k, a in zip(HISTOGRAM_ARRAYS, arrays)})
    return result


def pixel_evaluation(cfg):
    """{run: {protocol: {'auroc', 'fpr95', 'auprc'}}} and the histogram / ROC / PR plots."""
    histograms = {run: score_histograms(cfg, epoch) for run, epoch in evaluated_epochs(cfg).items()}
    results = {run: {protocol: PROTOCOLS[protocol](*h[protocol][1:]) for protocol in PROTOCOLS}
               for run, h in histograms.items()}
    title = f"{cfg.MODEL} on {cfg.VALSET}, score: {cfg.score}"
    plot_score_histograms(summary_plot_file(cfg, "score_histograms"),
                          {RUN_LABELS[run]: h["exact"] for run, h in histograms.items()}, title,
                          xlabel=f"OoD score ({cfg.score})")
    plot_roc_pr(summary_plot_file(cfg, "roc_pr"),
                {RUN_LABELS[run]: h["paper"][1:] for run, h in histograms.items()}, title, protocol="paper")
    return results


def summary_plot_file(cfg, kind):
    """`<kind>_<run>_<score>.png` in the plots folder; <run> is the evaluated epoch's pattern, as the
    plot compares the baseline with that epoch."""
    run = paths.epoch_pattern(cfg, cfg.val_epoch)
    return os.path.join(paths.plots_dir(cfg), f"{kind}_{run}_{cfg.score}.png")


# ---------------------------------------------------------------- segment level

def meta_classification(cfg, epoch):
    """The saved meta classifier result of `epoch`, after running whatever stage is missing."""
    write_probs(cfg, epoch)
    run_segment_search(cfg, epoch, DATASETS[cfg.VALSET].train_id_out)
    return remove_false_positives(cfg, epoch)


def _component_metrics(cfg, epoch, removed):
    """SegmentMeIfYouCan summaries of the entropy-threshold prediction and, after removing the
    `removed` segments of each image, of the meta-classified one."""
    dataset = DATASETS[cfg.VALSET]
    before, after = ComponentAccumulator(), ComponentAccumulator()
    for i in probs_indices(cfg, epoch):
        components = np.abs(read_components(paths.components_file(cfg, epoch, i)))
        gt_train = read_probs(paths.probs_file(cfg, epoch, i), ("gt_train_ids",))[0]
        gt_ood, void = gt_train == dataset.train_id_out, gt_train == dataset.void_id
        before.update(components > 0, gt_ood, void)
        after.update((components > 0) & ~np.isin(components, list(removed[i])), gt_ood, void)
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
        removed = removed_segments(saved)
        before, after = _component_metrics(cfg, epoch, removed)
        results[run] = {"fp": saved["fp_before"], "fn": saved["fn_before"], "components": before}
        results[f"{run}_meta"] = {"fp": saved["fp_after"], "fn": saved["fn_after"], "components": after}
        _draw_panels(cfg, epoch, removed)
    last = "trained" if "trained" in results else "baseline"
    results["meta"] = results.pop(f"{last}_meta")
    results["meta_classifier"] = classifier
    return results


def _draw_panels(cfg, epoch, removed):
    """The picture of each of the first cfg.panels images (image, truth, score, segments)."""
    dataset = DATASETS[cfg.VALSET]
    for i in probs_indices(cfg, epoch)[:cfg.panels]:
        path = panel_file(cfg, epoch, i)
        if os.path.exists(path):
            continue
        score, gt_train, image_path = _score_and(cfg, paths.probs_file(cfg, epoch, i), "gt_train_ids",
                                                 "image_path")
        plot_image_panel(path, read_rgb(image_path.decode()), gt_train, dataset.train_id_in, dataset.train_id_out,
                         score, read_components(paths.components_file(cfg, epoch, i)), removed[i],
                         f"{cfg.VALSET} image {i}, {paths.meta_classifier_name(cfg, epoch)}",
                         score_range=SCORE_RANGES[cfg.score])


def panel_file(cfg, epoch, index):
    """`<run>_t<t>_<cv>/image_<i>_<score>.png` in the plots folder: the panel shows the segments the
    entropy threshold found and those the meta classifier removed, so both are in the name."""
    return os.path.join(paths.plots_dir(cfg), paths.meta_classifier_name(cfg, epoch),
                        f"image_{index:04d}_{cfg.score}.png")


# ---------------------------------------------------------------- in-distribution quality

def _miou_file(cfg, epoch):
    return os.path.join(paths.model_io_root(cfg), "miou", f"cityscapes_val_{paths.epoch_pattern(cfg, epoch)}.json")


def miou_of_epoch(cfg, epoch):
    """{'miou', 'class_iou'} of the network of `epoch` on the Cityscapes val split (cached)."""
    path = _miou_file(cfg, epoch)
    if os.path.exists(path):
        return read_json(path, "an mIoU result", "evaluation.py -miou (with the same settings)",
                         ("miou", "class_iou"))
    dataset = build_dataset("Cityscapes", cfg, split="val")
    device = default_device()
    model = network_at_epoch(cfg, epoch, dataset.num_classes, device)
    confusion = 0
    for _, logits, gt_train in network_outputs(model, dataset, list(range(len(dataset))), cfg.inference_batch_size,
                                               cfg.num_workers, device, desc="mIoU"):
        confusion = confusion + confusion_matrix(logits.argmax(0).cpu().numpy(), gt_train,
                                                 dataset.num_classes, dataset.void_id)
    result = {"miou": mean_iou(confusion), "class_iou": _json_safe(class_ious(confusion).tolist())}
    write_json(path, result)
    return result


def miou_evaluation(cfg):
    results = {run: miou_of_epoch(cfg, epoch) for run, epoch in evaluated_epochs(cfg).items()}
    results["meta"] = results.get("trained", results["baseline"])  # meta classification keeps the network
    return results


# ---------------------------------------------------------------- results

def evaluation_file(cfg):
    """Every number of an evaluation run, with its configuration (JSON)."""
    return os.path.join(paths.results_dir(cfg), f"evaluation_{paths.epoch_pattern(cfg, cfg.val_epoch)}_"
                                                f"t{cfg.entropy_threshold}_{cfg.score}.json")


def table_file(cfg):
    """The printed summary of an evaluation run (text)."""
    return os.path.splitext(evaluation_file(cfg))[0] + ".txt"


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
        # meta classification removes segments, not pixels: its pixel scores are those of the network
        # it ran on, the trained one or (val_epoch 0) the baseline, as for the mIoU
        network = pixel.get("trained", pixel.get("baseline", {})) if run == "meta" else pixel.get(run, {})
        values = network.get(protocol, {})
        return [_percent_cell(values.get(k)) for k in ("auroc", "fpr95", "auprc")]

    def components(run):
        return segment.get(run, {}).get("components", {})

    runs = [(RUN_LABELS[run], run) for run in ("baseline", "trained", "meta")]
    main = [(label, pixel_cells(run, "paper") + [str(segment.get(run, {}).get(k, "-")) for k in ("fp", "fn")]
             + [_percent_cell(components(run).get("mean_f1")), _percent_cell(miou.get(run, {}).get("miou"))])
            for label, run in runs]
    exact = [(label, pixel_cells(run, "exact")) for label, run in runs if run != "meta"]
    component = [(label, [_percent_cell(components(run).get(k)) for k in ("siou_gt", "ppv", "mean_f1")])
                 for label, run in runs]
    bins = results.get("config", {}).get("bins")
    blocks = [_block("pixel metrics: paper protocol; segments: FP/FN counts; in %",
                     ("AUROC", "FPR95", "AUPRC", "FP", "FN", "mean F1", "mIoU"), main),
              _block(f"pixel metrics, exact protocol ({bins} bins)", ("AUROC", "FPR95", "AUPRC"), exact),
              _block("component metrics (SegmentMeIfYouCan)", ("sIoU gt", "PPV", "mean F1"), component)]
    return "\n\n".join("\n".join(block) for block in blocks if block)


def _percent_cell(value):
    """A table cell: a number in % without the sign, - where there is none."""
    return "-" if value is None else f"{100 * value:.2f}"


def _written_folders(cfg):
    """The folders the evaluation writes to itself (the stages it runs first clean up their own)."""
    panels = [os.path.dirname(panel_file(cfg, epoch, 0)) for epoch in evaluated_epochs(cfg).values()]
    return [paths.results_dir(cfg), paths.plots_dir(cfg), os.path.dirname(_miou_file(cfg, 0)), *panels]


def evaluate(cfg, pixel=True, segment=True, miou=False):
    """Runs the chosen evaluations and saves their numbers with this run's configuration; the
    sections of the other evaluations stay as an earlier run saved them (so `-miou` after
    `-pixel -segment` adds the mIoU to the table). Returns every saved number."""
    for folder in _written_folders(cfg):
        remove_stale_temporaries(folder)
    path = evaluation_file(cfg)
    results = (read_json(path, "evaluation results", "evaluation.py (with the same settings)")
               if os.path.exists(path) else {})
    results["config"] = dataclasses.asdict(cfg)
    if pixel:
        results["pixel"] = pixel_evaluation(cfg)
    if segment:
        results["segment"] = segment_evaluation(cfg)
    if miou:
        results["miou"] = miou_evaluation(cfg)
    results = _json_safe(results)
    write_json(path, results)
    with atomic_path(table_file(cfg)) as tmp, open(tmp, "w") as f:
        f.write(f"{cfg.MODEL} on {cfg.VALSET}, entropy threshold {cfg.entropy_threshold}, score {cfg.score}\n"
                f"{results_table(results)}\n")
    logger.info("results saved to %s, pictures in %s", path, paths.plots_dir(cfg))
    return results
