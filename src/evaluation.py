"""Evaluation (docs/METHOD.md §6), the stages behind evaluation.py.

For the baseline (epoch 0) and the OoD-trained network (cfg.val_epoch) on cfg.VALSET:
  pixel     histograms of the OoD score over in-distribution and OoD pixels -> AUROC, FPR95, AUPRC
            (paper and exact protocol); plots of the histograms and of the ROC / PR curves
  segment   FP / FN segment counts before and after meta classification, and the component
            metrics (sIoU, PPV, F1) of the same predictions: Meta-OoD's own segments at the entropy
            threshold, not the SegmentMeIfYouCan leaderboard's protocol
  smiyc     on a SegmentMeIfYouCan set, that benchmark's protocol (src/smiyc.py): pixel AP, FPR95 and
            best F1 of the float16 scores, sIoU gt, PPV and F1 of the components at the best-F1
            threshold, for both networks and the meta-classified score (removed segments scored
            as the score's minimum)
  miou      19-class mIoU of both networks on the Cityscapes val split
Whatever an evaluation needs and is missing (the prepare stage's outputs, segment search, meta
classifier) is computed first. A re-run reads back or skips what exists and was computed from the
same inputs (src/provenance.py): those, the score histograms, the mIoU of each network and the
per-image panels; it writes the summaries again (the results file and table, the score-histogram
and ROC / PR plots). Each section of the results file keeps the settings and input identities it
was computed with. Under torchrun the network stages (prepare, mIoU) share the images between the
processes; the rest runs on the first process.
"""
import functools
import logging
import math
import os

import numpy as np

from src import paths, provenance
from src.atomic import (atomic_path, read_json, read_npz, remove_stale_temporaries, unusable, write_csv, write_json,
                        write_npz)
from src.component_metrics import ComponentAccumulator, map_component_scores
from src.dataset import DATASETS, build_dataset, require_labels
from src.distributed import current_process, own_share, summed
from src.errors import MetaOodError
from src.formatting import percent
from src.fp_removal import remove_false_positives, removed_segments
from src.image_outputs import has_outputs, image_histograms, image_indices, labels, run_histograms, score_of
from src.inference import network_at_epoch, network_outputs, prepare_images
from src.meta_classifier import MetaClassifierResult, per_image, uncovered_counts
from src.miou import class_ious, confusion_matrix, mean_iou
from src.pixel_metrics import PROTOCOLS
from src.plots import plot_image_panel, plot_roc_pr, plot_score_histograms
from src.run_log import progress
from src.scores import SCORE_RANGES
from src.segment_files import read_components
from src.segment_search import run_segment_search
from src.smiyc import ANOMALY, IN_DISTRIBUTION, TRACKS, VOID, smiyc_metrics

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
    indices = image_indices(cfg, epoch)  # evaluate() ran the prepare stage first
    output = provenance.histograms_output(cfg, epoch, indices)
    if output.reusable:
        return _read_histograms(path)
    histograms = run_histograms(cfg)
    for i in progress(indices, desc=f"pixel scores {paths.epoch_pattern(cfg, epoch)}"):
        for protocol, share in image_histograms(cfg, epoch, i).items():
            histograms[protocol].add_image(share)
    histograms.setdefault("paper", histograms["exact"])  # an unbounded score: the paper protocol on the fine grid
    result = {p: (h.edges, h.counts_in, h.counts_out) for p, h in histograms.items()}
    write_npz(path, {f"{p}_{k}": a for p, arrays in result.items() for k, a in zip(HISTOGRAM_ARRAYS, arrays)})
    output.done()
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
    """Component summaries (sIoU, PPV, F1) of the entropy-threshold segments and of the meta-classified
    ones (the segments of `saved` removed), and the per-image table (CSV, PER_IMAGE_COLUMNS) that
    points to the images where the method fails."""
    result = MetaClassifierResult.from_dict({k: v for k, v in saved.items() if k != "image_ids"})
    iou0_per_image = per_image(np.asarray(result.iou0, np.int64), result.image_index, result.n_images)
    before, after = ComponentAccumulator(), ComponentAccumulator()
    images = list(zip(saved["image_ids"], result.kept_per_image(), iou0_per_image))
    rows = [image_row(cfg, epoch, i, kept, iou0, before, after)
            for i, kept, iou0 in progress(images, desc="component metrics", unit="image")]
    write_csv(paths.per_image_file(cfg, epoch), PER_IMAGE_COLUMNS, rows)
    return before.summary(), after.summary()


# The component metrics of Meta-OoD's segments (entropy threshold, meta classification), named so that
# nobody takes them for the leaderboard's, which smiyc_evaluation computes.
METAOOD_COMPONENTS = "components_of_metaood_segments"


def segment_evaluation(cfg):
    """{run: {'fp', 'fn', METAOOD_COMPONENTS: component summary}} for baseline, trained, meta
    (meta classification of the trained network; of the baseline when val_epoch is 0), plus
    the meta classifier's own scores under 'meta_classifier'."""
    results, classifier = {}, {}
    for run, epoch in evaluated_epochs(cfg).items():
        saved = meta_classification(cfg, epoch)
        classifier[run] = {k: saved[k] for k in ("auroc", "auprc", "accuracy", "n_segments",
                                                 "removed_true_positives", "cv")}
        before, after = _per_image_evaluation(cfg, epoch, saved)
        results[run] = {"fp": saved["fp_before"], "fn": saved["fn_before"], METAOOD_COMPONENTS: before}
        results[f"{run}_meta"] = {"fp": saved["fp_after"], "fn": saved["fn_after"], METAOOD_COMPONENTS: after}
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
    record, missing = provenance.pending_panels(cfg, epoch, panel_indices(cfg, image_indices(cfg, epoch)))
    if not missing:
        return
    # The image comes from the data set, not from the stored image_path: some images are composed
    # (Fishyscapes Static: a Cityscapes image plus an overlay), and output i is item i.
    dataset = build_dataset(cfg.VALSET, cfg)
    with record:
        for i in progress(missing, desc="panels", unit="image"):
            gt_train, image_path = labels(cfg, epoch, i)
            plot_image_panel(paths.panel_file(cfg, epoch, i), dataset.read_image(i), gt_train, dataset.train_id_in,
                             dataset.train_id_out, score_of(cfg, epoch, i),
                             read_components(paths.components_file(cfg, epoch, i)), removed[i],
                             f"{os.path.basename(image_path)} ({cfg.VALSET} image {i}), "
                             f"{paths.meta_classifier_name(cfg, epoch)}",
                             score_range=SCORE_RANGES[cfg.score])
            record.done(paths.panel_file(cfg, epoch, i))


# ---------------------------------------------------------------- SegmentMeIfYouCan protocol

def smiyc_track(cfg):
    """The SegmentMeIfYouCan track of the run's evaluation set and split; None if it is not a SMIYC set."""
    return DATASETS[cfg.VALSET].spec.split_info(cfg).track


def require_smiyc_set(cfg) -> None:
    """A MetaOodError unless the run's evaluation set and split is a SegmentMeIfYouCan set."""
    if smiyc_track(cfg) is None:
        sets = [f"{name} ({split} split)" if len(cls.spec.splits) > 1 else name for name, cls in DATASETS.items()
                for split, s in cls.spec.splits.items() if s.track and s.labelled]
        raise MetaOodError(f"-smiyc: {cfg.VALSET} {DATASETS[cfg.VALSET].spec.split_of(cfg)} is not a "
                           f"SegmentMeIfYouCan set; these are: {', '.join(sets)}")


def smiyc_labels(gt_train, train_id_in, train_id_out) -> np.ndarray:
    """uint8 0 in-distribution, 1 anomaly, 255 every other pixel (void, and those that are neither)."""
    labels = np.full(gt_train.shape, VOID, np.uint8)
    labels[gt_train == train_id_in] = IN_DISTRIBUTION
    labels[gt_train == train_id_out] = ANOMALY
    return labels


def removed_score(cfg, score) -> float:
    """The score of a removed segment's pixels: the lower end of the score's range, or the frame's
    minimum for an unbounded score; the meta classifier says they are in-distribution."""
    value_range = SCORE_RANGES[cfg.score]
    return value_range[0] if value_range else float(score.min())


def meta_classified_score(score, components, removed, value) -> np.ndarray:
    """`score` with the pixels of the segments `removed` (ids k of the components map) set to `value`."""
    out = score.copy()
    out[np.isin(np.abs(components), list(removed))] = value
    return out


def _predicted_components(cfg, epoch, i):
    """The components map of image i's segments at the entropy threshold (segment search output)."""
    return read_components(paths.components_file(cfg, epoch, i))


def run_score_map(cfg, epoch, i, removed=None) -> np.ndarray:
    """The score map of image i (image_outputs.score_of); with `removed` (ids of segments), the
    meta-classified score."""
    score = score_of(cfg, epoch, i)
    if removed is None:
        return score
    return meta_classified_score(score, _predicted_components(cfg, epoch, i), removed, removed_score(cfg, score))


def _run_frames(cfg, epoch, desc, frame):
    """A callable that yields frame(i) for every image of the run, anew at each call (smiyc_metrics
    reads the frames twice; one at a time in memory)."""
    def frames():
        indices = image_indices(cfg, epoch)
        return map(frame, progress(indices, desc=f"{desc} {paths.epoch_pattern(cfg, epoch)}", unit="image"))
    return frames


def run_labels(cfg, epoch, i) -> np.ndarray:
    """The SegmentMeIfYouCan labels of image i."""
    dataset = DATASETS[cfg.VALSET]
    gt_train, _ = labels(cfg, epoch, i)
    return smiyc_labels(gt_train, dataset.train_id_in, dataset.train_id_out)


def _smiyc_figures(cfg, epoch, track, removed=None):
    """smiyc_metrics of the run's score, or of its meta-classified score (`removed`: probs index -> ids)."""
    def score(i):
        return run_score_map(cfg, epoch, i, None if removed is None else removed[i])
    return smiyc_metrics(_run_frames(cfg, epoch, "SegmentMeIfYouCan scores", score),
                         _run_frames(cfg, epoch, "SegmentMeIfYouCan labels", functools.partial(run_labels, cfg, epoch)),
                         track)


def smiyc_evaluation(cfg):
    """{'config': the protocol's settings, run: smiyc_metrics figures} for baseline, trained and meta (the
    meta-classified score of the network meta classification applies to)."""
    require_smiyc_set(cfg)
    track = smiyc_track(cfg)
    runs = evaluated_epochs(cfg)
    results = {}
    for run, epoch in runs.items():  # evaluate() ran the prepare stage first
        results[run] = _smiyc_figures(cfg, epoch, track)
    epoch = runs[meta_network(runs)]
    results["meta"] = _smiyc_figures(cfg, epoch, track, removed_segments(meta_classification(cfg, epoch)))
    results["config"] = {
        "track": track,
        "min_pred_pixels": TRACKS[track].min_pred_pixels,
        "min_gt_pixels": TRACKS[track].min_gt_pixels,
        "score": cfg.score,
        "pixel_curve": "exact over the scores rounded to float16 (the submission format), not per-frame bins",
        "component_threshold": "best_f1_threshold",
        "meta": f"the segments meta classifier {paths.meta_classifier_name(cfg, epoch)} removes (cross-validated "
                f"decisions), their pixels scored as the score's minimum",
    }
    return results


# ---------------------------------------------------------------- in-distribution quality

def miou_of_epoch(cfg, epoch):
    """{'miou', 'class_iou'} of the network of `epoch` on the Cityscapes val split (cached). Under
    torchrun every process counts its share of the images and the counts are summed."""
    path = paths.miou_file(cfg, epoch)
    dataset = build_dataset("Cityscapes", cfg, split="val")
    output = provenance.miou_output(cfg, epoch, dataset)
    if output.reusable:
        return read_json(path, "an mIoU result", "evaluation.py -miou (with the same settings)",
                         ("miou", "class_iou"))
    proc = current_process()
    model = network_at_epoch(cfg, epoch, dataset.num_classes, proc.device)
    confusion = np.zeros((dataset.num_classes, dataset.num_classes), np.int64)
    for _, logits, gt_train in network_outputs(model, dataset, own_share(range(len(dataset)), proc), cfg,
                                               proc.device, paths.evaluated_checkpoint(cfg, epoch), desc="mIoU"):
        confusion += confusion_matrix(logits.argmax(0).cpu().numpy(), gt_train, dataset.num_classes, dataset.void_id)
    confusion = summed(confusion, proc)
    result = {"miou": mean_iou(confusion), "class_iou": _json_safe(class_ious(confusion).tolist())}
    if proc.is_main:
        write_json(path, result)
        output.done()
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


def _settings(results, section):
    """The settings the section was computed with (None: not recorded, written by an older version)."""
    return results.get("configs", {}).get(section, {}).get("settings")


def results_title(model, valset, results) -> str:
    """The table's first line: network, data set and the settings of each section shown, those of
    the run that computed it."""
    shown = []
    for section in (s for s in provenance.SECTION_SETTINGS if s in results):
        settings = _settings(results, section)
        text = ("settings unknown" if settings is None
                else ", ".join(f"{name.replace('_', ' ')} {value}" for name, value in settings.items()))
        shown.append(f"{section} ({text})" if text else section)
    return "; ".join([f"{model} on {valset}", *shown])


def results_table(results):
    """The printed summary. Main block: pixel metrics (paper protocol), FP/FN segments, mean F1 (of
    Meta-OoD's segments) and mIoU, in %; on a SegmentMeIfYouCan set that benchmark's leaderboard columns;
    then the exact pixel protocol and the component metrics of Meta-OoD's segments."""
    pixel, segment, miou, smiyc = (results.get(k, {}) for k in ("pixel", "segment", "miou", "smiyc"))

    def pixel_cells(run, protocol):
        values = pixel.get(meta_network(pixel) if run == "meta" else run, {}).get(protocol, {})
        return [percent(values.get(k)) for k in ("auroc", "fpr95", "auprc")]

    def components(run):
        return segment.get(run, {}).get(METAOOD_COMPONENTS, {})

    runs = [(RUN_LABELS[run], run) for run in ("baseline", "trained", "meta")]
    main = [(label, pixel_cells(run, "paper") + [str(segment.get(run, {}).get(k, "-")) for k in ("fp", "fn")]
             + [percent(components(run).get("mean_f1")), percent(miou.get(run, {}).get("miou"))])
            for label, run in runs]
    exact = [(label, pixel_cells(run, "exact")) for label, run in runs if run != "meta"]
    component = [(label, [percent(components(run).get(k)) for k in ("siou_gt", "ppv", "mean_f1")])
                 for label, run in runs]
    leaderboard = [(label, [percent(smiyc.get(run, {}).get(k)) for k in ("ap", "fpr95", "siou_gt", "ppv", "mean_f1")])
                   for label, run in runs]
    bins = (_settings(results, "pixel") or {}).get("bins", "unknown")
    track = smiyc.get("config", {}).get("track")
    blocks = [_block("pixel metrics: paper protocol; segments: FP/FN counts; mean F1 of Meta-OoD's segments; in %",
                     ("AUROC", "FPR95", "AUPRC", "FP", "FN", "mean F1", "mIoU"), main),
              _block(f"SegmentMeIfYouCan protocol, {track} track: the leaderboard's columns (float16 scores, "
                     f"components at the best-F1 threshold; + meta classification: removed segments at the "
                     f"score's minimum), in %", ("AP", "FPR95", "sIoU gt", "PPV", "mean F1"), leaderboard),
              _block(f"pixel metrics, exact protocol ({bins} bins)", ("AUROC", "FPR95", "AUPRC"), exact),
              _block("component metrics of Meta-OoD's segments (entropy threshold; not the leaderboard's protocol)",
                     ("sIoU gt", "PPV", "mean F1"), component)]
    if not any("baseline" in section for section in (pixel, segment, miou)):
        blocks.append(["baseline: not evaluated (neither its checkpoint --init_ckpt nor its outputs exist)"])
    return "\n\n".join("\n".join(block) for block in blocks if block)


def _written_folders(cfg):
    """The folders the evaluation writes to itself (the stages it runs first clean up their own)."""
    panels = [os.path.dirname(paths.panel_file(cfg, epoch, 0)) for epoch in sorted({0, cfg.val_epoch})]
    return [paths.results_dir(cfg), paths.plots_dir(cfg), os.path.dirname(paths.miou_file(cfg, 0)), *panels]


def evaluate(cfg, pixel=True, segment=True, miou=False, smiyc=False):
    """Runs the chosen evaluations and saves their numbers, each section with its settings and the
    identity of its inputs (results['configs']); the sections of the other evaluations stay as an
    earlier run saved them (so `-miou` after `-pixel -segment` adds the mIoU to the table), unless
    their inputs changed since. Returns every saved number (None on the processes of a torchrun but
    the first: they only share the network's work)."""
    if pixel or segment or smiyc:
        require_labels(cfg.VALSET, cfg)
    if smiyc:
        require_smiyc_set(cfg)
    path = paths.evaluation_file(cfg)
    main = current_process().is_main
    if main:
        for folder in _written_folders(cfg):
            remove_stale_temporaries(folder)
        results = (read_json(path, "evaluation results", "evaluation.py (with the same settings)")
                   if os.path.exists(path) else {})
    runs = evaluated_epochs(cfg)
    if pixel or segment or smiyc:  # the network's stages first, on every process
        for epoch in runs.values():
            prepare_images(cfg, epoch)
    mious = miou_evaluation(cfg) if miou else None
    if not main:
        return None
    results.pop("config", None)  # an older version's: the last run's settings, whatever sections it computed
    results.setdefault("configs", {})
    computed = [section for section, chosen in (("pixel", pixel), ("segment", segment), ("miou", miou)) if chosen]
    provenance.drop_changed_sections(cfg, results, path, computed, runs)
    if pixel:
        results["pixel"] = pixel_evaluation(cfg)
    if segment:
        results["segment"] = segment_evaluation(cfg)
    if miou:
        results["miou"] = mious
    if smiyc:
        results["smiyc"] = smiyc_evaluation(cfg)
    for section in computed:
        results["configs"][section] = provenance.section_config(cfg, section, runs)
    results = _json_safe(results)
    write_json(path, results)
    with atomic_path(paths.table_file(cfg)) as tmp, open(tmp, "w") as f:
        f.write(f"{results_title(cfg.MODEL, cfg.VALSET, results)}\n{results_table(results)}\n")
    logger.info("results saved to %s, pictures in %s", path, paths.plots_dir(cfg))
    return results
