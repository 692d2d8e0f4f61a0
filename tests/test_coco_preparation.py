"""COCO mask preparation on a generated COCO set: the selection, the masks (against pycocotools'
own decoding), re-runs, and the messages for malformed annotation files."""
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from preparation.make_demo_data import coco_has_crowd, coco_has_excluded_class, coco_is_small, make_coco
from preparation.prepare_coco_segmentation import CocoAnnotationError, main, prepare_coco_segmentation
from src.dataset import COCO as CocoDataset
from src.errors import run_main

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "preparation" / "prepare_coco_segmentation.py"
EXCLUDED = {"person", "bicycle", "car", "motorcycle", "bus", "truck", "traffic light", "stop sign"}


@pytest.fixture(scope="module")
def coco_raw(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco_raw") / "COCO" / "2017"
    make_coco(str(root), 10, seed=3)
    return root


@pytest.fixture
def coco_root(coco_raw, tmp_path):
    root = tmp_path / "COCO" / "2017"
    shutil.copytree(coco_raw, root)
    return root


def annotations_path(root):
    return root / "annotations" / "instances_train2017.json"


def masks_folder(root):
    return root / "annotations" / "ood_seg_train2017"


def written_ids(root) -> set:
    return {int(name[:-4]) for name in os.listdir(masks_folder(root))}


def expected_ids(root, min_size=480) -> tuple:
    """Kept image ids by the rule of docs/METHOD.md §1, and the ids dropped for each reason."""
    data = json.loads(annotations_path(root).read_text())
    names = {c["id"]: c["name"] for c in data["categories"]}
    with_excluded = {a["image_id"] for a in data["annotations"] if names[a["category_id"]] in EXCLUDED}
    small = {i["id"] for i in data["images"] if min(i["height"], i["width"]) < min_size}
    kept = {i["id"] for i in data["images"]} - with_excluded - small
    return kept, with_excluded, small


def test_selection(coco_root):
    assert prepare_coco_segmentation(str(coco_root)) == len(written_ids(coco_root))
    kept, with_excluded, small = expected_ids(coco_root)
    assert kept and with_excluded - small and small - with_excluded  # every rule has something to do
    assert written_ids(coco_root) == kept


def test_generated_images_follow_the_generators_rules(coco_root):
    data = json.loads(annotations_path(coco_root).read_text())
    ids = [image["id"] for image in data["images"]]
    _, with_excluded, small = expected_ids(coco_root)
    crowd = {a["image_id"] for a in data["annotations"] if a["iscrowd"]}
    for rule, found in ((coco_has_excluded_class, with_excluded), (coco_is_small, small), (coco_has_crowd, crowd)):
        assert found == {image_id for i, image_id in enumerate(ids) if rule(i)}, rule.__name__


def test_min_image_size_flag(coco_root):
    prepare_coco_segmentation(str(coco_root), min_image_size=0)
    kept, _, small = expected_ids(coco_root, min_size=0)
    assert not small and written_ids(coco_root) == kept


def test_masks_of_images_no_longer_selected_are_deleted(coco_root, caplog):
    prepare_coco_segmentation(str(coco_root), min_image_size=0)
    kept = expected_ids(coco_root)[0]
    dropped = expected_ids(coco_root, min_size=0)[0] - kept
    assert dropped and dropped <= written_ids(coco_root)
    with caplog.at_level(logging.INFO):
        assert prepare_coco_segmentation(str(coco_root)) == 0
    assert written_ids(coco_root) == kept
    assert f"{len(dropped)} masks of images no longer selected deleted" in caplog.text


def test_masks_are_the_union_of_all_annotations(coco_root):
    prepare_coco_segmentation(str(coco_root))
    coco = COCO(str(annotations_path(coco_root)))
    crowd_pixels = 0
    for image_id in written_ids(coco_root):
        mask = np.array(Image.open(masks_folder(coco_root) / f"{image_id:012d}.png"))
        info = coco.imgs[image_id]
        assert mask.dtype == np.uint8 and mask.shape == (info["height"], info["width"])
        union = np.zeros(mask.shape, dtype=bool)
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=image_id)):
            decoded = coco.annToMask(ann).astype(bool)
            union |= decoded
            crowd_pixels += int(decoded.sum()) if ann["iscrowd"] else 0
        np.testing.assert_array_equal(mask, np.where(union, 254, 0))
        assert 0 < union.mean() < 1
    assert crowd_pixels > 0  # crowd regions were part of the comparison


def test_second_run_writes_nothing(coco_root):
    first = prepare_coco_segmentation(str(coco_root))
    stamps = {p: p.stat().st_mtime_ns for p in masks_folder(coco_root).iterdir()}
    assert first == len(stamps) > 0
    assert prepare_coco_segmentation(str(coco_root)) == 0
    assert {p: p.stat().st_mtime_ns for p in masks_folder(coco_root).iterdir()} == stamps
    missing = sorted(stamps)[0]
    os.remove(missing)
    assert prepare_coco_segmentation(str(coco_root)) == 1 and missing.exists()
    assert not [p for p in masks_folder(coco_root).iterdir() if p.name.startswith(".tmp")]


def test_year_comes_from_the_root(coco_root, tmp_path):
    """As for the data set that reads the masks: the root's last component is the year."""
    other = tmp_path / "coco_any_name"
    shutil.copytree(coco_root, other)
    with pytest.raises(CocoAnnotationError, match="instances_traincoco_any_name.json.*must end in the year"):
        prepare_coco_segmentation(str(other))
    root_2014 = tmp_path / "COCO" / "2014"
    shutil.copytree(coco_root, root_2014)
    (root_2014 / "train2017").rename(root_2014 / "train2014")
    annotations_path(root_2014).rename(root_2014 / "annotations" / "instances_train2014.json")
    assert prepare_coco_segmentation(str(root_2014)) == len(expected_ids(coco_root)[0])
    assert CocoDataset(str(root_2014)).images == sorted(
        str(root_2014 / "train2014" / f"{i:012d}.jpg") for i in expected_ids(coco_root)[0])


def drop(section):
    def edit(data):
        del data[section]
    return edit


def drop_annotation_id(data):
    del data["annotations"][0]["id"]


MALFORMED = {
    "not_json": (lambda path: path.write_text("{ this is not json"), "is not valid JSON"),
    "no_annotations": (drop("annotations"), "no 'annotations' list"),
    "no_images": (drop("images"), "no 'images' list"),
    "no_categories": (drop("categories"), "no 'categories' list"),
    "annotation_without_id": (drop_annotation_id, "entry 0 of 'annotations' lacks 'id'"),
    "missing_file": (lambda path: path.unlink(), "COCO annotation file not found"),
}


def make_malformed(root, case):
    path = annotations_path(root)
    change, message = MALFORMED[case]
    if case in ("not_json", "missing_file"):
        change(path)
    else:
        data = json.loads(path.read_text())
        change(data)
        path.write_text(json.dumps(data))
    return path, message


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_annotations(coco_root, case, caplog):
    path, message = make_malformed(coco_root, case)
    with pytest.raises(CocoAnnotationError, match=message) as err:
        prepare_coco_segmentation(str(coco_root))
    assert str(path) in str(err.value)
    with caplog.at_level(logging.ERROR):
        assert run_main(main, ["--coco_root", str(coco_root)]) == 1
    assert message in caplog.text and str(path) in caplog.text
    assert not masks_folder(coco_root).exists()


def test_script_exit_status_and_message(coco_root):
    path, message = make_malformed(coco_root, "annotation_without_id")
    run = subprocess.run([sys.executable, str(SCRIPT), "--coco_root", str(coco_root)],
                         capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 1
    assert message in run.stderr and str(path) in run.stderr and "Traceback" not in run.stderr


def test_script_runs_and_documents_its_flags(coco_root):
    run = subprocess.run([sys.executable, str(SCRIPT), "--coco_root", str(coco_root)],
                         capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 0 and written_ids(coco_root) == expected_ids(coco_root)[0]
    usage = subprocess.run([sys.executable, str(SCRIPT), "-h"], capture_output=True, text=True, cwd=REPO)
    assert usage.returncode == 0
    for flag in ("--coco_root", "--split", "--min_image_size"):
        assert flag in usage.stdout
    assert "--year" not in usage.stdout
