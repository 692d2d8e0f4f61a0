"""Bad inputs through the real scripts (issue 11, section 3).

Each case stops its script with exit status 2 (a flag or config.py, found at parse time) or 1
(data, files), with one line that names the flag or the file and no traceback, and leaves no
half-written output; what is checked before the work starts (flags, config.py, the COCO annotation
file) leaves no output at all. Each case has a folder of its own with its own copy of what it
breaks; all cases run in one batch of processes (tests/script_runner.py: the script files as
`__main__`, forked from a process that imported their libraries once; META_OOD_COLD_SCRIPTS=1
starts a fresh interpreter per case instead).
"""
import errno
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Optional

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from preparation.make_demo_data import demo_roots
from src.atomic import atomic_path, write_json
from src.errors import MetaOodError
from src.model import build_network
from src.probs_file import write_probs_file
from tests.script_runner import Run, Scripts

REPO = Path(__file__).resolve().parents[1]
MODEL = "DeepLabV3+_MobileNetV3"
COMMON = ("-model", MODEL, "--num_workers", "0")
LOG_LINE = re.compile(r"\d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR) ")
LOGS = ("io/logs/*.log",)  # what a run leaves even when it stops at once: its log file
PARALLEL_RUNS = max(2, min(4, os.cpu_count() or 1))


# ---------------------------------------------------------------- the commands

def meta(w, *flags):
    return ["meta_classification.py", *COMMON, "--segment_workers", "1", "--io_root", w.io, "-epoch", "0",
            "--init_ckpt", w.ckpt, "-val", "LostAndFound", "--lostandfound_root", w.laf, "--fishyscapes_root", w.fs,
            *flags]


def evaluation(w, *flags):
    return ["evaluation.py", *COMMON, "--segment_workers", "1", "--io_root", w.io, "-epoch", "0", "--init_ckpt", w.ckpt,
            "--panels", "1", "-val", "LostAndFound", "--lostandfound_root", w.laf, "--fishyscapes_root", w.fs,
            "--cityscapes_root", w.cs, *flags]


def training(w, *flags):
    return ["ood_training.py", *COMMON, "--io_root", w.io, "--init_ckpt", w.ckpt, "--cityscapes_root", w.cs,
            "--coco_root", w.coco, "-crop", "32", "-batch", "2", "--max_iters", "1", "-nepochs", "1", *flags]


def prepare_coco(w, *flags):
    return ["preparation/prepare_coco_segmentation.py", "--coco_root", w.coco_raw, *flags]


def bare(script, *flags):
    """A script with `flags` only: every other setting from the case's config file."""
    return lambda w: [script, *flags]


def with_flags(command, *flags):
    return lambda w: command(w, *(str(f).format(**vars(w)) for f in flags))


# ---------------------------------------------------------------- breaking things in a case's own copy

def own(w, name) -> Path:
    """The case's copy of the data root `name` (made on first use; its last component stays, the COCO
    root's is the year), used by the case from then on."""
    if not str(getattr(w, name)).startswith(str(w.dir)):
        copy = Path(w.dir, name, Path(getattr(w, name)).name)
        shutil.copytree(getattr(w, name), copy)
        setattr(w, name, str(copy))
    return Path(getattr(w, name))


def broken(name, pattern, change, first=False):
    """`change(path)` on the files matching `pattern` in the case's copy of data root `name` (only on
    the first, sorted, with first=True: the files of LostAndFound item 0); w.broken: the first of them."""
    def setup(w):
        paths = sorted(own(w, name).glob(pattern))[:1 if first else None]
        w.broken = str(paths[0])
        each(paths, change)
    return setup


def each(paths, change):
    for path in paths:
        change(path)


def steps(*setups):
    def setup(w):
        for step in setups:
            step(w)
    return setup


def painted(value):
    """Sets a few pixels of a label image to `value`."""
    def change(path):
        label = np.array(Image.open(path))
        label[:2, :3] = value
        Image.fromarray(label).save(path)
    return change


def train_ids_beside(value):
    """Writes a _labelTrainIds.png of `value` beside a _labelIds.png."""
    def change(path):
        label = np.array(Image.open(path))
        Image.fromarray(np.full_like(label, value)).save(str(path).replace("_labelIds", "_labelTrainIds"))
    return change


def resized(path) -> None:
    Image.open(path).resize((40, 20)).save(path)


def truncated(path) -> None:
    Path(path).write_bytes(Path(path).read_bytes()[:20])


def replaced_by(content: bytes):
    return lambda path: Path(path).write_bytes(content)


LAF_ITEM_0 = dict(first=True)
LAF_IMAGE, LAF_LABEL = "leftImg8bit/test/*/*_leftImg8bit.png", "gtCoarse/test/*/*_gtCoarse_labelIds.png"


# -- config.py

def config_file(change):
    """The case runs with a copy of the tests' config file changed by `change` (text -> text)."""
    def setup(w):
        w.config = str(Path(w.dir, "my_config.py"))
        Path(w.config).write_text(change((REPO / "tests" / "fixed_config.py").read_text()))
        w.env = {"META_OOD_CONFIG": w.config}
    return setup


def replaced(old, new):
    def change(text):
        assert old in text
        return text.replace(old, new)
    return change


def no_config_file(w):
    w.config = str(Path(w.dir, "nowhere.py"))
    w.env = {"META_OOD_CONFIG": w.config}


# -- COCO annotations

def annotations_edited(edit):
    """The case's COCO copy with its annotation file's JSON changed in place by `edit(data)`;
    edit None: the file removed, a str: the file replaced by that text."""
    def setup(w):
        w.annotations = str(own(w, "coco_raw") / "annotations" / "instances_train2017.json")
        if edit is None:
            os.remove(w.annotations)
        elif isinstance(edit, str):
            Path(w.annotations).write_text(edit)
        else:
            data = json.loads(Path(w.annotations).read_text())
            edit(data)
            Path(w.annotations).write_text(json.dumps(data))
    return setup


def set_first_image(key, value):
    def edit(data):
        data["images"][0][key] = value
    return edit


def set_annotation(n, **values):
    return lambda data: data["annotations"][n].update(values)


def rle_changed(key, change):
    return lambda rle: {**rle, key: change(rle[key])}


def set_segmentation(change, kind, counts=None):
    """Changes the segmentation of the first annotation with polygons (kind list) or RLE (kind dict;
    counts list: uncompressed, str: compressed)."""
    def edit(data):
        annotation = next(a for a in data["annotations"] if isinstance(a["segmentation"], kind)
                          and (counts is None or isinstance(a["segmentation"]["counts"], counts)))
        annotation["segmentation"] = change(annotation["segmentation"])
    return edit


# -- checkpoints and probs files

def checkpoint(weights):
    """The case's --init_ckpt: the tests' random network's state dict changed by `weights(state) -> state`."""
    def setup(w):
        w.ckpt = str(Path(w.dir, "network.pth"))
        torch.save({"state_dict": weights(torch.load(w.prepared_ckpt, weights_only=True)["state_dict"])}, w.ckpt)
    return setup


def garbage_checkpoint(w):
    w.ckpt = str(Path(w.dir, "garbage.pth"))
    Path(w.ckpt).write_bytes(b"garbage")


def all_nan(state):
    return {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in state.items()}


def renamed_key(state):
    key = next(iter(state))
    return {("renamed." + k if k == key else k): v for k, v in state.items()}


def own_prepared_outputs(w) -> Path:
    """A copy of the output tree of a finished baseline evaluation as the case's io root; returns
    its laf_eval folder."""
    shutil.copytree(w.prepared, w.io)
    return Path(w.io, f"meta_ood_{MODEL}", "laf_eval")


def probs_changed(change, then_clear=("metaseg_io",)):
    """The prepared output tree with probs file 0 changed by `change(path)`, and the outputs `then_clear`
    (globs below laf_eval) removed, so that the run reads the file again; w.probs0: its path."""
    def setup(w):
        folder = own_prepared_outputs(w)
        w.probs0 = str(folder / "probs" / "baseline" / "probs0.hdf5")
        change(w.probs0)
        for pattern in then_clear:
            each(folder.glob(pattern), lambda path: shutil.rmtree(path) if path.is_dir() else os.remove(path))
    return setup


def rewritten(change):
    """Writes a probs file again, its probabilities and train ids as `change(probs, gt_train)` makes them."""
    def rewrite(path):
        with h5py.File(path, "r") as f:
            probs, gt_train, gt_label = (f[k][()] for k in ("probabilities", "gt_train_ids", "gt_label_ids"))
        os.remove(path)
        write_probs_file(path, *change(probs, gt_train), gt_label, "image.png")
    return rewrite


def nan_in_columns(probs, columns):
    return np.where(np.arange(probs.shape[-1]) < columns, np.nan, probs).astype(np.float32)


def without_label_ids(path) -> None:
    with h5py.File(path, "a") as f:
        del f["gt_label_ids"]


# -- files of the output tree

def output_corrupted(relative, corrupt, clear=()):
    """The prepared output tree with the first file matching `relative` (a glob below
    meta_ood_<MODEL>) changed by `corrupt(path)`, and the files matching `clear` removed."""
    def setup(w):
        folder = own_prepared_outputs(w).parent
        w.corrupt = str(sorted(folder.glob(relative))[0])
        corrupt(w.corrupt)
        for pattern in clear:
            each(folder.glob(pattern), os.remove)
    return setup


def file_at(relative, text="a file where a folder belongs\n"):
    """A regular file `relative` to the case's io root (w.file)."""
    def setup(w):
        w.file = str(Path(w.io, relative))
        Path(w.file).parent.mkdir(parents=True, exist_ok=True)
        Path(w.file).write_text(text)
    return setup


# ---------------------------------------------------------------- the cases

@dataclass(frozen=True)
class Case:
    id: str
    command: Callable            # (w) -> argv, w: the case's paths
    status: int
    names: tuple                 # what the message says, formatted with the case's paths (str.format)
    setup: Optional[Callable] = None   # (w): breaks an input in the case's own copy
    untouched: bool = False      # checked before any work: the case's folder stays as it was
    written: tuple = LOGS        # otherwise: the (complete) files the failing run may leave, globs
    file_size_kb: Optional[int] = None


def flag(script, command, names):
    return dict(command=command, status=2, names=(f"{script}.py: error:", *names), untouched=True)


def data(command, names, setup=None, **kwargs):
    return dict(command=command, status=1, names=names, setup=setup, **kwargs)


def annotations(edit, names):
    return dict(command=prepare_coco, status=1, names=("{annotations}", *names), setup=annotations_edited(edit),
                untouched=True)


def corrupt(command, setup, names=("{corrupt}",), **kwargs):
    """A damaged file of the output tree, which the message names."""
    return data(command, names, setup, **kwargs)


SEGMENT, REMOVAL = with_flags(meta, "-segment"), with_flags(meta, "-removal")
PIXEL, MIOU = with_flags(evaluation, "-pixel"), with_flags(evaluation, "-miou")
FISHYSCAPES = with_flags(meta, "-val", "Fishyscapes")
CITYSCAPES_TRAIN_IDS, CITYSCAPES_LABEL_IDS = "gtFine/train/*/*_labelTrainIds.png", "gtFine/train/*/*_labelIds.png"
RLE_SUM = ["RLE counts sum to", ", not "]
CASES = [
    # ---- flags and config.py: refused at parse time
    Case("bins_1", **flag("evaluation", with_flags(evaluation, "--bins", "1"),
                          ["--bins: expected an integer >= 2, got 1"])),
    Case("kfold_with_one_fold", **flag("evaluation", with_flags(evaluation, "--cv", "kfold", "--folds", "1"),
                                       ["--folds: expected an integer >= 2, got 1"])),
    Case("alpha_above_1", **flag("ood_training", with_flags(training, "-alpha", "1.5"),
                                 ["-alpha/--alpha/--pareto_alpha: expected a number in [0, 1], got 1.5"])),
    Case("threshold_1", **flag("meta_classification", with_flags(meta, "-threshold", "1"),
                               ["-threshold/--threshold/--entropy_threshold: expected a number in (0, 1), got 1"])),
    Case("unknown_model", **flag("ood_training", with_flags(training, "-model", "UNet"),
                                 ["-model/--model/--MODEL: invalid choice: 'UNet'"])),
    Case("no_segment_workers", **flag("meta_classification", with_flags(meta, "--segment_workers", "0"),
                                      ["--segment_workers: expected an integer > 0, got 0"])),
    Case("resume_with_no_init_ckpt", **flag("ood_training", with_flags(training, "-epoch", "2", "--no_init_ckpt"),
                                            ["--no_init_ckpt only applies to -epoch 0"])),
    Case("ckpt_for_the_baseline", **flag("evaluation", with_flags(evaluation, "--ckpt", "{ckpt}"),
                                         ["--ckpt names the evaluated OoD-trained checkpoint"])),
    Case("panel_images_not_indices", **flag("evaluation", with_flags(evaluation, "--panel_images", "1,x"),
                                            ["--panel_images: expected comma-separated integers, got '1,x'"])),
    Case("unknown_flag", **flag("ood_training", with_flags(training, "--pareto", "0.5"),
                                ["unrecognized arguments: --pareto"])),
    Case("config_syntax_error", **flag("evaluation", bare("evaluation.py"), ["{config}: cannot be read: SyntaxError"]),
         setup=config_file(lambda text: text + "params = {\n")),
    Case("config_lacks_a_setting", **flag("meta_classification", bare("meta_classification.py"),
                                          ["{config} lacks params['entropy_threshold']"]),
         setup=config_file(replaced('    "entropy_threshold": 0.7,\n', ""))),
    Case("config_io_root_none", **flag("evaluation", bare("evaluation.py"),
                                       ["io_root (--io_root): expected a path (a string), got None (from config.py "
                                        "IO_ROOT)"]),
         setup=config_file(replaced('IO_ROOT = "/nonexistent/io"', "IO_ROOT = None"))),
    Case("config_not_found", **flag("ood_training", bare("ood_training.py"), ["config file not found: {config}"]),
         setup=no_config_file),
    Case("config_unknown_split", **flag("meta_classification", bare("meta_classification.py", "-val", "Fishyscapes"),
                                        ["fishyscapes_split (--fishyscapes_split): 'Dynamic' is not one of Static, "
                                         "LostAndFound (from config.py FISHYSCAPES_SPLIT)"]),
         setup=config_file(replaced('FISHYSCAPES_SPLIT = "Static"', 'FISHYSCAPES_SPLIT = "Dynamic"'))),
    Case("coco_min_image_size_not_a_number", **flag("prepare_coco_segmentation",
                                                    with_flags(prepare_coco, "--min_image_size", "x"),
                                                    ["--min_image_size: expected an integer >= 0, got 'x'"])),
    Case("coco_root_not_set", **flag("prepare_coco_segmentation", bare("preparation/prepare_coco_segmentation.py"),
                                     ["no COCO root: pass --coco_root or set COCO_ROOT in {config}"]),
         setup=config_file(replaced('COCO_ROOT = "/nonexistent/COCO/2017"\n', ""))),
    # ---- the COCO annotation file: checked as a whole before the first mask
    Case("coco_annotations_not_json", **annotations("{ this is not json", ["is not valid JSON"])),
    Case("coco_annotations_missing", **annotations(None, ["COCO annotation file not found"])),
    Case("coco_no_annotations_list", **annotations(lambda d: d.pop("annotations"), ["no 'annotations' list"])),
    Case("coco_annotation_without_id", **annotations(lambda d: d["annotations"][3].pop("id"),
                                                     ["entry 3 of 'annotations' lacks 'id'"])),
    Case("coco_height_a_string", **annotations(set_first_image("height", "500"),
                                               ["entry 0 of 'images'", "height '500' is not a positive integer"])),
    Case("coco_width_zero", **annotations(set_first_image("width", 0),
                                          ["entry 0 of 'images'", "width 0 is not a positive integer"])),
    Case("coco_unknown_image", **annotations(set_annotation(5, image_id=-7),
                                             ["entry 5 of 'annotations' (id 6): image_id -7 names no image"])),
    Case("coco_unknown_category", **annotations(set_annotation(5, category_id=9999),
                                                ["entry 5 of 'annotations' (id 6): category_id 9999 names no "
                                                 "category"])),
    Case("coco_segmentation_a_number", **annotations(set_segmentation(lambda s: 5, list),
                                                     ["segmentation is neither polygons (a list) nor RLE"])),
    Case("coco_polygon_of_two_points", **annotations(set_segmentation(lambda s: [s[0][:4]], list),
                                                     ["polygon 0 has 2 points, a polygon needs at least 3"])),
    Case("coco_polygon_odd_coordinates", **annotations(set_segmentation(lambda s: [s[0][:-1]], list),
                                                       ["polygon 0 has an odd number of coordinates"])),
    Case("coco_no_polygon", **annotations(set_segmentation(lambda s: [], list), ["segmentation has no polygon"])),
    Case("coco_rle_counts_short", **annotations(set_segmentation(rle_changed("counts", lambda c: c[:-1]), dict, list),
                                                RLE_SUM)),
    Case("coco_rle_counts_too_long", **annotations(set_segmentation(rle_changed("counts", lambda c: c + [7]), dict,
                                                                    list), RLE_SUM)),
    Case("coco_compressed_rle_cut", **annotations(set_segmentation(rle_changed("counts", lambda c: c[:-4]), dict, str),
                                                  RLE_SUM)),
    Case("coco_rle_of_another_size", **annotations(set_segmentation(rle_changed("size", lambda s: [s[0] + 1, s[1]]),
                                                                    dict), ["RLE size [", "is not the image's ["])),
    # ---- data sets
    Case("laf_root_missing", **data(with_flags(meta, "--lostandfound_root", "{dir}/nowhere"),
                                    ["LostAndFound root not found: {dir}/nowhere"])),
    Case("laf_root_not_set", **data(with_flags(meta, "--lostandfound_root", ""),
                                    ["LostAndFound root not set: set LOSTANDFOUND_ROOT in config.py or pass "
                                     "--lostandfound_root"])),
    Case("laf_no_images", **data(meta, ["no images found: nothing matches {laf}/leftImg8bit/test/*/*_leftImg8bit.png"],
                                 broken("laf", LAF_IMAGE, os.remove))),
    Case("laf_label_missing", **data(meta, ["label file missing for", "expected {broken}"],
                                     broken("laf", LAF_LABEL, os.remove, **LAF_ITEM_0))),
    Case("laf_sizes_differ", **data(meta, ["image and label sizes differ", "{broken} is 40x20"],
                                    broken("laf", LAF_LABEL, resized, **LAF_ITEM_0))),
    Case("laf_unreadable_image", **data(meta, ["cannot read image {broken}"],
                                        broken("laf", LAF_IMAGE, replaced_by(b"not an image"), **LAF_ITEM_0))),
    Case("laf_truncated_image", **data(meta, ["cannot read image {broken}"],
                                       broken("laf", LAF_IMAGE, truncated, **LAF_ITEM_0))),
    Case("laf_label_id_77", **data(meta, ["label {broken} holds unexpected values 77: expected LostAndFound label "
                                          "ids 0..43"], broken("laf", LAF_LABEL, painted(77), **LAF_ITEM_0))),
    Case("laf_train_id_77", **data(meta, ["_gtCoarse_labelTrainIds.png holds unexpected values 77: expected "
                                          "LostAndFound train ids 0..2, 255"],
                                   broken("laf", LAF_LABEL, train_ids_beside(77), **LAF_ITEM_0))),
    Case("fishyscapes_label_77", **data(FISHYSCAPES, ["label {broken} holds unexpected values 77: expected "
                                                      "Fishyscapes labels 0, 1, 255"],
                                        broken("fs", "Static/0000.png", painted(77)))),
    Case("fishyscapes_no_frames", **data(FISHYSCAPES, ["no Fishyscapes Static frames in {fs}/Static"],
                                         broken("fs", "Static/*", os.remove))),
    Case("cityscapes_label_id_77", **data(training, ["_gtFine_labelIds.png holds unexpected values 77: expected "
                                                     "Cityscapes label ids 0..33"],
                                          steps(broken("cs", CITYSCAPES_TRAIN_IDS, os.remove),
                                                broken("cs", CITYSCAPES_LABEL_IDS, painted(77))))),
    Case("cityscapes_train_id_77", **data(training, ["_gtFine_labelTrainIds.png holds unexpected values 77: "
                                                     "expected Cityscapes train ids 0..18, 255"],
                                          broken("cs", CITYSCAPES_TRAIN_IDS, painted(77)))),
    Case("cityscapes_val_train_id_77_miou", **data(MIOU, ["label {cs}/gtFine/val/", "holds unexpected values 77: "
                                                          "expected Cityscapes train ids 0..18, 255"],
                                                   broken("cs", "gtFine/val/*/*_labelTrainIds.png", painted(77)))),
    Case("coco_mask_77", **data(training, ["label {coco}/annotations/ood_seg_train2017/", "holds unexpected values "
                                           "77: expected COCO masks 0, 254"],
                                broken("coco", "annotations/ood_seg_train2017/*.png", painted(77)))),
    Case("coco_not_prepared", **data(with_flags(training, "--coco_root", "{coco_raw}"),
                                     ["prepared COCO masks", "not found: {coco_raw}/annotations/ood_seg_train2017"])),
    Case("batch_larger_than_the_set", **data(with_flags(training, "-batch", "64"),
                                             ["epoch 1 had no batch: 11 images for 1 process(es) x batch size 64"])),
    # ---- checkpoints and network outputs
    Case("ckpt_missing", **data(with_flags(meta, "--init_ckpt", "{dir}/none.pth"),
                                ["checkpoint of the baseline (--init_ckpt) not found: {dir}/none.pth"])),
    Case("ckpt_not_a_checkpoint", **data(meta, ["cannot read checkpoint {ckpt}"],
                                         garbage_checkpoint)),
    Case("ckpt_keys_do_not_match", **data(meta, ["checkpoint {ckpt} does not fit", "1 missing: ", "; 1 unexpected: "],
                                          checkpoint(renamed_key))),
    Case("training_init_ckpt_missing", **data(with_flags(training, "--init_ckpt", "{dir}/none.pth"),
                                              ["initial checkpoint {dir}/none.pth does not exist"])),
    Case("network_outputs_nan", **data(meta, ["the network's outputs on {laf}/leftImg8bit/", "are not finite",
                                              "the weights of {ckpt}"], checkpoint(all_nan))),
    Case("network_outputs_nan_miou", **data(MIOU, ["the network's outputs on {cs}/leftImg8bit/val/", "are not finite",
                                                   "the weights of {ckpt}"], checkpoint(all_nan))),
    # ---- probs files
    Case("no_probs_files", **data(SEGMENT, ["nor probs files (probs<i>.hdf5) in {io}/"])),
    Case("probs_of_three_classes", **data(SEGMENT, ["{probs0}: probabilities of shape (3, 48, 96), expected "
                                                    "(19, 48, 96)"],
                                          probs_changed(rewritten(lambda p, gt: (p[:3], gt))))),
    Case("probs_and_labels_of_other_sizes", **data(SEGMENT, ["{probs0}: probabilities of shape (19, 48, 88), "
                                                             "expected (19, 48, 96)",
                                                             "(48, 96) pixels of gt_train_ids"],
                                                   probs_changed(rewritten(lambda p, gt: (p[:, :, :88], gt))))),
    Case("probs_nan", **data(SEGMENT, ["{probs0}: probabilities hold NaN or infinite values on 240 of 4608 pixels"],
                             probs_changed(rewritten(lambda p, gt: (nan_in_columns(p, 5), gt))))),
    Case("probs_nan_pixel_evaluation", **data(PIXEL, ["{probs0}: probabilities hold NaN or infinite values"],
                                              probs_changed(rewritten(lambda p, gt: (np.full_like(p, np.nan), gt)),
                                                            then_clear=("results/histograms_*",)))),
    Case("probs_not_hdf5", **data(SEGMENT, ["{probs0}: not a readable HDF5 probs file"],
                                  probs_changed(replaced_by(b"garbage")))),
    Case("probs_without_label_ids", **data(SEGMENT, ["{probs0}: missing dataset(s) gt_label_ids"],
                                           probs_changed(without_label_ids))),
    Case("maxlogit_without_logits", **data(with_flags(evaluation, "-pixel", "--score", "maxlogit"),
                                           ["missing dataset(s) logits", "--store_logits"],
                                           own_prepared_outputs)),
    # ---- the output disk
    Case("io_root_a_file", **data(meta, ["cannot write the log file {io}/logs/", "Not a directory"], file_at("."),
                                  untouched=True)),
    Case("output_folder_a_file", **data(meta, ["cannot write {file}/compact/baseline/labels/identity.json: Not a directory"],
                                        file_at(f"meta_ood_{MODEL}/laf_eval"))),
    Case("probs_file_too_large", **data(with_flags(meta, "--store_probs"), [f"cannot write {{io}}/meta_ood_{MODEL}/laf_eval/probs/baseline/"
                                               "probs0.hdf5: File too large"], file_size_kb=64)),
    Case("checkpoint_too_large", **data(training, [f"cannot write {{io}}/meta_ood_{MODEL}/weights/{MODEL}_epoch_1_"
                                                   "alpha_0.9.pth: File too large"], file_size_kb=64)),
    # ---- corrupt files in the output tree
    Case("metrics_truncated", **corrupt(REMOVAL, output_corrupted("laf_eval/metaseg_io/metrics/baseline_t0.7/0000.npz",
                                                                  truncated,
                                                                  clear=("laf_eval/metaseg_io/meta_classifier/*",)))),
    Case("meta_classifier_json_garbage", **corrupt(REMOVAL, output_corrupted(
        "laf_eval/metaseg_io/meta_classifier/*.json", replaced_by(b'{"image_ids": [0,')))),
    Case("results_json_garbage", **corrupt(PIXEL, output_corrupted("laf_eval/results/evaluation_*.json",
                                                                   replaced_by(b"garbage")))),
    Case("histograms_garbage", **corrupt(PIXEL, output_corrupted("laf_eval/results/histograms_*.npz",
                                                                 replaced_by(b"garbage")))),
    Case("miou_json_garbage", **corrupt(MIOU, output_corrupted("miou/*.json", replaced_by(b"[1, 2")))),
    Case("components_truncated", **corrupt(with_flags(evaluation, "-segment"), output_corrupted(
        "laf_eval/metaseg_io/components/baseline_t0.7/0000.npz", truncated), written=(*LOGS, "io/plots/*.png"))),
    Case("loss_record_garbage", **corrupt(training, file_at(f"meta_ood_{MODEL}/weights/{MODEL}_alpha_0.9_losses.jsonl",
                                                            '{"epoch": 1, "iteration": 1, "loss": 0.5}\n{"epo'),
                                          names=("{file}",), written=(*LOGS, "io/*.pth"))),
]


# ---------------------------------------------------------------- running them

def tree(folder) -> dict:
    """Every file and folder below `folder`: relative path -> (size, mtime) of a file, None for a folder."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) if p.is_file() else None
            for p in sorted(Path(folder).rglob("*"))}


@pytest.fixture(scope="module")
def scripts(tmp_path_factory):
    runner = Scripts(tmp_path_factory.mktemp("script_runs"), PARALLEL_RUNS)
    yield runner
    runner.close()


def run_one(scripts, argv):
    (done,) = scripts.run([Run(argv)])
    return done


@pytest.fixture(scope="module")
def world(scripts, demo_data, demo_raw, tmp_path_factory):
    """The shared inputs: the tiny data sets, a random network as the baseline checkpoint and the
    output tree of its finished evaluation on the LostAndFound-like set, with probs files (copied by the
    cases that need it; the compact outputs' own bad files are in tests/test_compact_file.py)."""
    root = tmp_path_factory.mktemp("bad_inputs")
    torch.manual_seed(0)
    ckpt = root / "baseline.pth"
    torch.save({"state_dict": build_network(MODEL, 19).state_dict()}, ckpt)
    w = SimpleNamespace(dir=root, io=root / "prepared", prepared=root / "prepared", ckpt=ckpt, prepared_ckpt=ckpt,
                        cs=demo_data["Cityscapes"], coco=demo_data["COCO"], coco_raw=demo_roots(demo_raw)["COCO"],
                        laf=demo_data["LostAndFound"], fs=demo_data["Fishyscapes"])
    done = run_one(scripts, evaluation(w, "-pixel", "-segment", "-miou", "--store_probs"))
    assert done.returncode == 0, done.stderr[-3000:]
    return w


@dataclass
class Outcome:
    done: subprocess.CompletedProcess
    paths: dict
    before: dict
    after: dict


def _selected(request) -> list:
    """The cases of the tests this session runs (so that -k runs only those scripts)."""
    ids = {item.callspec.id for item in request.session.items
           if item.module.__name__ == __name__ and hasattr(item, "callspec") and "case" in item.callspec.params}
    return [case for case in CASES if case.id in ids]


@pytest.fixture(scope="module")
def outcomes(scripts, world, request, tmp_path_factory):
    """case id -> Outcome of every selected case, all run in one batch."""
    cases, places, before = _selected(request), [], []
    for case in cases:
        w = SimpleNamespace(**vars(world), env={})
        w.dir = tmp_path_factory.mktemp(case.id)
        w.io = str(w.dir / "io")
        if case.setup:
            case.setup(w)
        places.append(w)
        before.append(tree(w.dir))
    done = scripts.run([Run(case.command(w), w.env, case.file_size_kb) for case, w in zip(cases, places)])
    return {case.id: Outcome(d, {k: str(v) for k, v in vars(w).items()}, b, tree(w.dir))
            for case, w, d, b in zip(cases, places, done, before)}


def the_message(done, status) -> str:
    """The one line that reports the problem; asserts that there is exactly one and no traceback."""
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    if status == 2:
        assert len(lines) == 1, done.stderr
        return lines[0]
    # every line is a log record, so the message did not spill over lines
    assert all(LOG_LINE.match(line) for line in lines), done.stderr
    errors = [line for line in lines if " ERROR " in line]
    assert len(errors) == 1, done.stderr
    return errors[0]


# Complete records, not outputs: what a stage about to compute noted of its inputs (src/provenance.py).
RECORDS = ("io/cache/weights_sha256.json", "io/*/identity.json")


def left_behind(outcome, case) -> list:
    """Files the failed run wrote or changed that it may not leave."""
    changed = [path for path, stamp in outcome.after.items()
               if stamp is not None and outcome.before.get(path) != stamp]
    return [path for path in changed
            if ".tmp-" in path or not any(fnmatch(path, g) for g in (*case.written, *RECORDS))]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_a_bad_input_stops_the_script_with_one_line(case, outcomes):
    outcome = outcomes[case.id]
    assert outcome.done.returncode == case.status, outcome.done.stderr[-3000:]
    message = the_message(outcome.done, case.status)
    for name in case.names:
        assert name.format(**outcome.paths) in message
    if case.untouched:
        assert outcome.after == outcome.before
    else:
        assert not left_behind(outcome, case)


def test_enough_kinds_of_bad_input():
    assert len(CASES) >= 40


def test_a_crop_larger_than_the_images_is_one_warning(scripts, world, tmp_path):
    w = SimpleNamespace(**{**vars(world), "io": str(tmp_path / "io")})
    done = run_one(scripts, training(w, "-crop", "200"))
    assert done.returncode == 0, done.stderr[-3000:]
    warnings = [line for line in done.stderr.splitlines() if "-crop" in line]
    assert len(warnings) == 1 and " WARNING " in warnings[0], done.stderr
    # 10 Cityscapes-like scenes of 96x48 and 1 COCO-like image of 480 px or more
    assert "-crop 200: 10 of the first epoch's 11 training images have a side below 200 px" in warnings[0]
    assert "96x48); they are upscaled to 200x200" in warnings[0]


# ---------------------------------------------------------------- a read-only or full disk, in-process

@pytest.mark.parametrize("code", [errno.EROFS, errno.ENOSPC])
def test_a_failed_rename_names_the_file(tmp_path, monkeypatch, code):
    """A read-only file system refuses the rename (EROFS); a full one can too (ENOSPC, the directory entry)."""
    def refused(src, dst):
        raise OSError(code, os.strerror(code))
    monkeypatch.setattr(os, "replace", refused)
    target = tmp_path / "result.json"
    with pytest.raises(MetaOodError) as err:
        write_json(target, {"a": 1})
    assert str(err.value) == f"cannot write {target}: {os.strerror(code)}"
    assert not list(tmp_path.iterdir())


def test_a_full_disk_names_the_file(tmp_path):
    """/dev/full fails every write with ENOSPC, as a full disk does."""
    target = tmp_path / "table.txt"
    with pytest.raises(MetaOodError) as err:
        with atomic_path(target), open("/dev/full", "w") as full:
            full.write("x" * 100_000)
    assert str(err.value) == f"cannot write {target}: {os.strerror(errno.ENOSPC)}"
    assert not list(tmp_path.iterdir())

