"""Evaluation figures as PNG files: score histograms, ROC and PR curves, one panel per image.

Figures are matplotlib.figure.Figure objects on their own Agg canvas, never pyplot's: no
backend switch at import, no screen, and no global figure registry, so nothing stays alive
after a figure is saved, however many images are drawn. Sizes are fixed (figure inches times
DPI, no tight bounding box): a PNG's pixel size is known in advance. Every file goes through
atomic_path; its temporary file keeps the .png suffix, from which savefig takes the format.
"""
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from src.atomic import atomic_path
from src.pixel_metrics import FPR95_TPR, PROTOCOLS, pr_curve_from_counts, roc_curve_from_counts

DPI = 100
DISPLAY_BINS = 100  # bins of a drawn histogram
HISTOGRAMS_SIZE = (8.0, 5.5)  # inches; at DPI 100: 800 x 550 pixels
CURVES_SIZE = (11.0, 6.5)  # 1100 x 650
PANEL_SIZE = (16.0, 9.0)  # 1600 x 900, for images twice as wide as high (Cityscapes, LostAndFound, Fishyscapes)

# Colour = class (histograms, ground truth, segments), line style = run (histograms, curves).
IN_COLOUR, OUT_COLOUR, VOID_COLOUR = "#2b7bba", "#e8552d", "#1e1e1e"
KEPT_COLOUR, REMOVED_COLOUR = "#ff3b1f", "#22d3ee"
RUN_COLOURS = ("#2b7bba", "#d62728", "#2ca02c", "#9467bd")
LINE_STYLES = ("-", "--", ":", "-.")
DIMMED = 0.45  # brightness of the grey image under the segments
SEGMENT_OPACITY = 0.7  # of segment interiors; boundaries are opaque, so that touching segments stay apart


def _figure(size):
    figure = Figure(figsize=size, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure, path):
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=DPI)


def _checked_runs(runs, what):
    if not 1 <= len(runs) <= len(LINE_STYLES):
        raise ValueError(f"{what}: expected 1 to {len(LINE_STYLES)} runs (one line style each), got {len(runs)}")
    return runs.items()


def _density(edges, counts, label, name):
    edges, counts = np.asarray(edges, np.float64), np.asarray(counts, np.float64)
    if counts.ndim != 1 or edges.shape != (counts.size + 1,):
        raise ValueError(f"histogram {label!r}: expected bins + 1 edges for the bins of {name} counts, "
                         f"got {edges.shape} edges and {counts.shape} counts")
    if counts.sum() <= 0:
        raise ValueError(f"histogram {label!r}: no {name} pixel counted, its density is undefined")
    return counts / (counts.sum() * np.diff(edges))


def _coarse(edges, counts_in, counts_out):
    """At most DISPLAY_BINS bins, each the sum of neighbouring ones: fine bins show mostly noise.

    Histogram grids are uniform, so a grid padded with empty bins keeps its spacing.
    """
    step = -(-len(counts_in) // DISPLAY_BINS)
    if step == 1:
        return edges, counts_in, counts_out
    pad = (-len(counts_in)) % step
    width = edges[1] - edges[0]
    edges = np.concatenate([edges, edges[-1] + width * np.arange(1, pad + 1)])[::step]
    return (edges, *(np.concatenate([c, np.zeros(pad, c.dtype)]).reshape(-1, step).sum(axis=1)
                     for c in (counts_in, counts_out)))


def plot_score_histograms(path, histograms, title, xlabel="OoD score"):
    """Densities of the score of in-distribution and OoD pixels, runs overlaid.

    histograms: {run label: (edges, counts_in, counts_out)}, e.g. a ScoreHistogram's edges and
    counts per run; colour = pixel class, line style = run.
    """
    figure = _figure(HISTOGRAMS_SIZE)
    ax = figure.add_subplot()
    occupied = []
    for (label, histogram), style in zip(_checked_runs(histograms, path), LINE_STYLES):
        edges, counts_in, counts_out = _coarse(*histogram)
        for counts, colour, name in ((counts_in, IN_COLOUR, "in-distribution"), (counts_out, OUT_COLOUR, "OoD")):
            density = _density(edges, counts, label, name)
            ax.stairs(density, edges, color=colour, alpha=0.12, fill=True)
            ax.stairs(density, edges, color=colour, linestyle=style, linewidth=1.8, label=f"{label}: {name} pixels")
            nonempty = np.flatnonzero(density)
            occupied += [edges[nonempty[0]], edges[nonempty[-1] + 1]]
    # The grid of an unbounded score spans more than its scores: show only the occupied bins.
    ax.set(title=title, xlabel=xlabel, ylabel="density", xlim=(min(occupied), max(occupied)))
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    # Outside the axes, one column per run: inside, a legend would hide some peak.
    figure.legend(loc="outside lower center", ncols=len(histograms))
    _save(figure, path)


def plot_roc_pr(path, curves, title, protocol="exact"):
    """ROC curve (FPR95 point marked) and precision-recall curve of each run, side by side.

    curves: {run label: (counts_in, counts_out)} histogram counts. The curves are drawn from the
    counts as they are; the legend's AUROC, FPR95 and AUPRC come from the same counts through
    PROTOCOLS[protocol], the numbers the evaluation reports.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown metrics protocol {protocol!r}: expected one of {', '.join(PROTOCOLS)}")
    figure = _figure(CURVES_SIZE)
    figure.suptitle(title)
    roc_ax, pr_ax = figure.subplots(1, 2)
    roc_ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="chance")
    roc_ax.axhline(FPR95_TPR, color="grey", linestyle="--", linewidth=0.8,
                   label=f"TPR = {FPR95_TPR:.0%}, dots at the FPR95")
    for (label, (counts_in, counts_out)), colour, style in zip(_checked_runs(curves, path), RUN_COLOURS, LINE_STYLES):
        metrics = PROTOCOLS[protocol](counts_in, counts_out)
        roc_ax.plot(*roc_curve_from_counts(counts_in, counts_out), color=colour, linestyle=style, linewidth=1.8,
                    label=f"{label}: AUROC {metrics['auroc']:.2%}, FPR95 {metrics['fpr95']:.2%}, "
                          f"AUPRC {metrics['auprc']:.2%}")
        roc_ax.plot(metrics["fpr95"], FPR95_TPR, "o", color=colour, markersize=7, markeredgecolor="black")
        precision, recall = pr_curve_from_counts(counts_in, counts_out)
        # Steps: the area under the drawn curve is the average precision, as scikit-learn draws it.
        pr_ax.plot(recall, precision, drawstyle="steps-post", color=colour, linestyle=style, linewidth=1.8)
    roc_ax.set(title="ROC (OoD = positive)", xlabel="false positive rate", ylabel="true positive rate")
    pr_ax.set(title="precision-recall (OoD = positive)", xlabel="recall", ylabel="precision")
    for ax in (roc_ax, pr_ax):
        ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01))
        ax.grid(alpha=0.3)
    # One legend for both panels (a run has the same line in both), outside: inside, it would hide some curve.
    figure.legend(*roc_ax.get_legend_handles_labels(), loc="outside lower center", ncols=2)
    _save(figure, path)


def _checked_panel_inputs(image, gt_train, score, components):
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image: expected a uint8 RGB array (H, W, 3), got {image.dtype} {image.shape}")
    maps = [np.asarray(m) for m in (gt_train, score, components)]
    for array, name in zip(maps, ("ground truth", "score map", "components map")):
        if array.shape != image.shape[:2]:
            raise ValueError(f"{name} of shape {array.shape} for an image of shape {image.shape}: "
                             f"expected {image.shape[:2]}")
    return image, *maps


def _ground_truth_rgb(gt_train, train_id_in, train_id_out):
    rgb = np.empty(gt_train.shape + (3,), np.float32)
    rgb[:] = _rgb(VOID_COLOUR)
    rgb[gt_train == train_id_in] = _rgb(IN_COLOUR)
    rgb[gt_train == train_id_out] = _rgb(OUT_COLOUR)
    return rgb


def _rgb(colour):
    return np.array([int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)], np.float32)


def _segments_rgb(image, components, removed):
    """Grey dimmed image, segments painted over it; (rgb, number kept, number removed)."""
    segment_of = np.abs(components.astype(np.int32))
    ids = np.unique(segment_of[segment_of > 0])
    removed = np.unique(np.fromiter(removed, np.int64))
    unknown = np.setdiff1d(removed, ids)
    if unknown.size:
        present = f"ids {ids[0]}..{ids[-1]}" if ids.size else "none"
        raise ValueError(f"removed segment ids {unknown.tolist()} are not in the components map "
                         f"(its segments: {present})")
    grey = image.astype(np.float32).mean(axis=2, keepdims=True) / 255 * DIMMED
    rgb = np.repeat(grey, 3, axis=2)
    is_removed = np.isin(segment_of, removed)
    opacity = np.where(components < 0, 1.0, SEGMENT_OPACITY)[..., None].astype(np.float32)
    for mask, colour in (((segment_of > 0) & ~is_removed, KEPT_COLOUR), (is_removed, REMOVED_COLOUR)):
        rgb[mask] = (1 - opacity[mask]) * rgb[mask] + opacity[mask] * _rgb(colour)
    return rgb, ids.size - removed.size, removed.size


def plot_image_panel(path, image, gt_train, train_id_in, train_id_out, score, components, removed, title,
                     score_range=(0.0, 1.0)):
    """Four panels of one evaluation image: image, ground truth, score heat map, OoD segments.

    image: uint8 (H, W, 3); gt_train: (H, W) train ids, anything but train_id_in / train_id_out
    is void (not evaluated); score: (H, W), coloured over score_range, or over the map's own range
    if None (unbounded scores, scores.SCORE_RANGES); components: (H, W) ints, +k interior and -k
    boundary pixels of predicted segment k, 0 elsewhere; removed: ids k the meta classifier removed.
    """
    image, gt_train, score, components = _checked_panel_inputs(image, gt_train, score, components)
    segments, n_kept, n_removed = _segments_rgb(image, components, removed)
    low, high = (np.nanmin(score), np.nanmax(score)) if score_range is None else score_range
    figure = _figure(PANEL_SIZE)
    figure.suptitle(title)
    (image_ax, gt_ax), (score_ax, segments_ax) = axes = figure.subplots(2, 2)
    image_ax.imshow(image)
    gt_ax.imshow(_ground_truth_rgb(gt_train, train_id_in, train_id_out))
    heat = score_ax.imshow(score, cmap="inferno", vmin=low, vmax=high)
    figure.colorbar(heat, ax=score_ax, location="bottom", shrink=0.6, aspect=40)
    segments_ax.imshow(segments)
    gt_ax.legend(handles=[Patch(color=IN_COLOUR, label=f"in-distribution (train id {train_id_in})"),
                          Patch(color=OUT_COLOUR, label=f"OoD (train id {train_id_out})"),
                          Patch(color=VOID_COLOUR, label="void, not evaluated")],
                 loc="upper center", bbox_to_anchor=(0.5, -0.02), ncols=3, fontsize="small")
    segments_ax.legend(handles=[Patch(color=KEPT_COLOUR, label=f"kept by the meta classifier ({n_kept})"),
                                Patch(color=REMOVED_COLOUR, label=f"removed by the meta classifier ({n_removed})")],
                       loc="upper center", bbox_to_anchor=(0.5, -0.02), ncols=2, fontsize="small")
    for ax, name in zip(axes.flat, ("image", "ground truth", "OoD score heat map", "predicted OoD segments")):
        ax.set_title(name)
        ax.set_axis_off()
    _save(figure, path)
