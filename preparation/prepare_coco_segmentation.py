"""Writes the COCO OoD-proxy masks (docs/METHOD.md §1).

For every image of <coco_root>/annotations/instances_<split><year>.json that contains no
instance of a class Cityscapes also has and whose sides are both >= --min_image_size:
<coco_root>/annotations/ood_seg_<split><year>/<id:012d>.png, 8-bit, 254 on every annotated
pixel (crowd regions included), 0 elsewhere. <year> is the last component of <coco_root>, as
for the data set that reads the masks. Masks already written are skipped, so an
interrupted run can simply be started again; masks of images no longer selected (after a change
of --min_image_size or of the annotation file) are deleted, as training reads every mask there.
"""
import argparse
import contextlib
import glob
import io
import json
import logging
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools.coco import COCO

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.atomic import atomic_path  # noqa: E402
from src.dataset.coco import COCO as CocoDataset, annotation_file, masks_dir  # noqa: E402
from src.errors import MetaOodError, run_main  # noqa: E402
from src.run_log import progress  # noqa: E402
from src.settings import ConfigError, OneLineParser, config_name, load_config_module, nonnegative_int  # noqa: E402

logger = logging.getLogger(__name__)

EXCLUDED_CLASSES = ("person", "bicycle", "car", "motorcycle", "bus", "truck", "traffic light", "stop sign")
REQUIRED_KEYS = {
    "images": ("id", "height", "width"),
    "annotations": ("id", "image_id", "category_id", "segmentation"),
    "categories": ("id", "name"),
}


class CocoAnnotationError(MetaOodError, ValueError):
    """An annotation file that is missing or not in the COCO instances format."""


def read_annotations(path: str) -> dict:
    """The parsed annotation file, checked for what the mask writing needs."""
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise CocoAnnotationError(f"COCO annotation file not found: {path} "
                                  "(the COCO root must end in the year, e.g. .../COCO/2017)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CocoAnnotationError(f"COCO annotation file {path} is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise CocoAnnotationError(f"COCO annotation file {path}: expected a JSON object at the top level")
    for section, keys in REQUIRED_KEYS.items():
        entries = data.get(section)
        if not isinstance(entries, list):
            raise CocoAnnotationError(f"COCO annotation file {path}: no '{section}' list")
        for n, entry in enumerate(entries):
            missing = [k for k in keys if not isinstance(entry, dict) or k not in entry]
            if missing:
                raise CocoAnnotationError(f"COCO annotation file {path}: entry {n} of '{section}' "
                                          f"lacks {', '.join(repr(k) for k in missing)}")
    problems = annotation_problems(data)
    if problems:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise CocoAnnotationError(f"COCO annotation file {path}: {problems[0]}{more}")
    return data


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _image_problems(data) -> list:
    return [f"entry {n} of 'images' (id {image['id']!r}): {key} {image[key]!r} is not a positive integer"
            for n, image in enumerate(data["images"]) for key in ("height", "width")
            if not (_is_count(image[key]) and image[key] > 0)]


def compressed_counts(text: str):
    """The run lengths of a compressed RLE string (pycocotools' rleFrString in maskApi.c); None if cut off."""
    counts, codes, p = [], [ord(c) - 48 for c in text], 0
    while p < len(codes):
        value, shift, more = 0, 0, True
        while more:
            if p == len(codes) or not 0 <= codes[p] < 64:
                return None
            code = codes[p]
            value |= (code & 0x1F) << shift
            more, p, shift = bool(code & 0x20), p + 1, shift + 5
            if not more and code & 0x10:
                value |= -1 << shift
        counts.append(value + counts[-2] if len(counts) > 2 else value)
    return counts


def _rle_problem(rle, height, width):
    size, counts = rle.get("size"), rle.get("counts")
    if size != [height, width]:
        return f"RLE size {size!r} is not the image's [{height}, {width}]"
    if isinstance(counts, str):
        counts = compressed_counts(counts)
    if not isinstance(counts, list) or not all(_is_count(c) and c >= 0 for c in counts):
        return "RLE counts are neither a list of run lengths nor a compressed RLE string"
    if sum(counts) != height * width:
        return f"RLE counts sum to {sum(counts)}, not {height} x {width} = {height * width}"
    return None


def _polygon_problem(polygons):
    if not polygons:
        return "segmentation has no polygon"
    for k, polygon in enumerate(polygons):
        if not isinstance(polygon, list) or not all(type(v) in (int, float) for v in polygon):
            return f"polygon {k} is not a list of coordinates"
        if len(polygon) % 2:
            return f"polygon {k} has an odd number of coordinates ({len(polygon)})"
        if len(polygon) < 6:
            return f"polygon {k} has {len(polygon) // 2} points, a polygon needs at least 3"
    return None


def segmentation_problem(segmentation, height: int, width: int):
    """Why pycocotools cannot decode `segmentation` into a height x width mask (None: it can)."""
    if isinstance(segmentation, list):
        return _polygon_problem(segmentation)
    if isinstance(segmentation, dict):
        return _rle_problem(segmentation, height, width)
    return f"segmentation is neither polygons (a list) nor RLE (a dict of size and counts): {segmentation!r:.40}"


def annotation_problems(data: dict) -> list:
    """Messages for every entry the masks cannot be made from, checked before the first mask is written:
    image sizes, the images and categories the annotations name, and each segmentation."""
    problems = _image_problems(data)
    if problems:
        return problems
    images = {image["id"]: image for image in data["images"]}
    categories = {category["id"] for category in data["categories"]}
    for n, ann in enumerate(data["annotations"]):
        image = images.get(ann["image_id"])
        if image is None:
            problem = f"image_id {ann['image_id']!r} names no image"
        elif ann["category_id"] not in categories:
            problem = f"category_id {ann['category_id']!r} names no category"
        else:
            problem = segmentation_problem(ann["segmentation"], image["height"], image["width"])
        if problem:
            problems.append(f"entry {n} of 'annotations' (id {ann['id']!r}): {problem}")
    return problems


def coco_index(data: dict):
    """A pycocotools COCO object over already-parsed annotations."""
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):  # createIndex prints progress lines
        coco.createIndex()
    return coco


def selected_image_ids(coco, min_image_size: int) -> list:
    """Images without any instance of an excluded class and with both sides >= min_image_size."""
    excluded = set(coco.getCatIds(catNms=list(EXCLUDED_CLASSES)))
    keep = []
    for image_id in sorted(coco.getImgIds()):
        info = coco.imgs[image_id]
        if min(info["height"], info["width"]) < min_image_size:
            continue
        if any(coco.anns[a]["category_id"] in excluded for a in coco.getAnnIds(imgIds=image_id, iscrowd=None)):
            continue
        keep.append(image_id)
    return keep


def ood_mask(coco, image_id: int) -> np.ndarray:
    """uint8 (H,W): train_id_out on the union of every annotation of the image, train_id_in elsewhere."""
    info = coco.imgs[image_id]
    covered = np.zeros((info["height"], info["width"]), dtype=bool)
    for ann in coco.loadAnns(coco.getAnnIds(imgIds=image_id, iscrowd=None)):
        covered |= coco.annToMask(ann).astype(bool)
    return np.where(covered, CocoDataset.train_id_out, CocoDataset.train_id_in).astype(np.uint8)


def write_png(path: str, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")


def prepare_coco_segmentation(coco_root: str, split: str = "train", min_image_size: int = 480) -> int:
    """Writes the missing masks of the selected images; returns how many it wrote."""
    coco_root = os.path.normpath(coco_root)
    path = annotation_file(coco_root, split)
    coco = coco_index(read_annotations(path))
    image_ids = selected_image_ids(coco, min_image_size)
    out_dir = masks_dir(coco_root, split)
    logger.info("%d of %d images of %s kept (no excluded class, sides >= %d); masks in %s",
                len(image_ids), len(coco.imgs), path, min_image_size, out_dir)
    written = 0
    for image_id in progress(image_ids, desc="COCO OoD masks", unit="img"):
        target = os.path.join(out_dir, f"{image_id:012d}.png")
        if not os.path.exists(target):
            write_png(target, ood_mask(coco, image_id))
            written += 1
    logger.info("%d masks written, %d already there", written, len(image_ids) - written)
    stale = stale_masks(out_dir, image_ids)
    for mask in stale:
        os.remove(mask)
    if stale:
        logger.info("%d masks of images no longer selected deleted", len(stale))
    return written


def stale_masks(out_dir: str, image_ids: list) -> list:
    """The masks in `out_dir` (every *.png, as the data set reads them) of images not in `image_ids`."""
    wanted = {f"{image_id:012d}.png" for image_id in image_ids}
    return [path for path in glob.glob(os.path.join(out_dir, "*.png")) if os.path.basename(path) not in wanted]


def parse_args(argv=None) -> argparse.Namespace:
    """The flags; a bad one, a broken config.py or no COCO root at all exits with 2 and one line."""
    parser = OneLineParser(prog="prepare_coco_segmentation.py", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    try:
        config = load_config_module()
    except ConfigError as err:
        parser.error(str(err))
    parser.add_argument("--coco_root", default=getattr(config, "COCO_ROOT", None),
                        help="COCO root ending in the year (default: config.COCO_ROOT = %(default)s)")
    parser.add_argument("--split", default="train", help="annotation split (default: %(default)s)")
    parser.add_argument("--min_image_size", type=nonnegative_int, default=480,
                        help="smallest height and width kept, in pixels (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.coco_root is None:
        parser.error(f"no COCO root: pass --coco_root or set COCO_ROOT in {config_name(config)}")
    return args


def main(argv=None):
    args = parse_args(argv)
    prepare_coco_segmentation(args.coco_root, args.split, args.min_image_size)


if __name__ == "__main__":
    sys.exit(run_main(main))
