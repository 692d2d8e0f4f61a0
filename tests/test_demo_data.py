"""The synthetic demo data: determinism, the real layouts, consistent labels, genuine COCO
annotations, and OoD objects that are present in every test image and unlike the training scenes."""
import json
import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from torchvision.datasets import Cityscapes as TorchvisionCityscapes

from preparation.demo import default_root
import preparation.make_demo_data as make_demo_data_module
from preparation.make_demo_data import DemoDataError, coco_kept_count, main, make_demo_data, uncompressed_rle
from src.errors import run_main
from tests.fixtures_data import TINY

LAF_OBJECTS = list(range(2, 31)) + [32, 35, 40, 41, 42, 43]


def files(root) -> dict:
    return {p.relative_to(root).as_posix(): p for p in sorted(Path(root).rglob("*")) if p.is_file()}


def test_same_seed_gives_identical_files(demo_raw, tmp_path):
    make_demo_data(tmp_path, **TINY)
    ours, again = files(demo_raw), files(tmp_path)
    assert list(ours) == list(again) and len(ours) > 50
    for name, path in ours.items():
        assert path.read_bytes() == again[name].read_bytes(), name


def test_other_seed_gives_other_images(demo_raw, tmp_path):
    make_demo_data(tmp_path, **{**TINY, "seed": 1})
    ours, other = files(demo_raw), files(tmp_path)
    images = [n for n in ours if n.endswith((".png", ".jpg")) and "COCO" not in n]
    assert images and all(n in other and ours[n].read_bytes() != other[n].read_bytes() for n in images)
    assert ours["COCO/2017/annotations/instances_train2017.json"].read_bytes() != \
        other["COCO/2017/annotations/instances_train2017.json"].read_bytes()


def test_a_root_with_data_of_another_seed_is_refused(demo_raw, tmp_path, caplog):
    """Writing seed 1 over seed 0 would leave a mix of both (and of COCO masks prepared from both)."""
    root = tmp_path / "data"
    shutil.copytree(demo_raw, root)
    message = f"{root} already holds demo data generated with seed 0, not 1"
    with pytest.raises(DemoDataError, match=re.escape(message)):
        make_demo_data(root, **{**TINY, "seed": 1})
    contents = {name: path.read_bytes() for name, path in files(demo_raw).items()}
    assert {name: path.read_bytes() for name, path in files(root).items()} == contents  # nothing written
    with caplog.at_level(logging.ERROR):
        assert run_main(main, ["--root", str(root), "--seed", "1"]) == 1
    assert message in caplog.text


def test_demo_runs_of_other_seeds_default_to_their_own_root():
    assert [default_root(seed) for seed in (0, 1, 2)] == ["demo", "demo_seed1", "demo_seed2"]


def test_layouts(demo_raw):
    names = list(files(demo_raw))
    city = r"[a-z]+_\d{6}_\d{6}"
    laf = r"\d\d_[A-Za-z_0-9]+_\d{6}_\d{6}"
    patterns = {
        rf"cityscapes/leftImg8bit/(train|val)/[a-z]+/{city}_leftImg8bit\.png": 13,
        rf"cityscapes/gtFine/(train|val)/[a-z]+/{city}_gtFine_labelIds\.png": 13,
        rf"cityscapes/gtFine/(train|val)/[a-z]+/{city}_gtFine_labelTrainIds\.png": 13,
        r"COCO/2017/train2017/\d{12}\.jpg": 10,
        r"COCO/2017/annotations/instances_train2017\.json": 1,
        rf"lost_and_found/leftImg8bit/test/[^/]+/{laf}_leftImg8bit\.png": 4,
        rf"lost_and_found/gtCoarse/test/[^/]+/{laf}_gtCoarse_labelIds\.png": 4,
        r"fishyscapes/(Static|LostAndFound)/\d{4}\.(png|jpg)": 12,
        r"demo_seed\.txt": 1,
    }
    for pattern, count in patterns.items():
        assert sum(bool(re.fullmatch(pattern, n)) for n in names) == count, pattern
    assert len(names) == sum(patterns.values())


def test_cityscapes_label_files_agree(demo_raw):
    table = np.full(256, 255)
    for c in TorchvisionCityscapes.classes:
        if c.id >= 0 and c.train_id not in (255, -1):
            table[c.id] = c.train_id
    for label_ids in (demo_raw / "cityscapes" / "gtFine").rglob("*_labelIds.png"):
        ids = np.array(Image.open(label_ids))
        train_ids = np.array(Image.open(str(label_ids).replace("_labelIds", "_labelTrainIds")))
        np.testing.assert_array_equal(train_ids, table[ids])
        assert ids.shape == (TINY["height"], TINY["width"])
        assert {7, 11, 23, 1} <= set(np.unique(ids).tolist())  # road, building, sky, ego vehicle (void)


def test_coco_annotations_are_genuine(demo_raw):
    path = demo_raw / "COCO" / "2017" / "annotations" / "instances_train2017.json"
    data = json.loads(path.read_text())
    coco = COCO(str(path))
    kinds = {"polygon": 0, "rle": 0, "uncompressed_rle": 0}
    for ann in data["annotations"]:
        segmentation = ann["segmentation"]
        kind = "polygon" if isinstance(segmentation, list) else \
            "uncompressed_rle" if isinstance(segmentation["counts"], list) else "rle"
        kinds[kind] += 1
        assert (kind == "uncompressed_rle") == (ann["iscrowd"] == 1)
        mask = coco.annToMask(ann)
        assert ann["area"] == mask.sum() > 0
        np.testing.assert_allclose(ann["bbox"], mask_utils.toBbox(mask_utils.encode(np.asfortranarray(mask))))
    assert all(kinds.values())
    for image in data["images"]:
        assert Image.open(demo_raw / "COCO" / "2017" / "train2017" / image["file_name"]).size == \
            (image["width"], image["height"])
    names = {c["name"] for c in data["categories"]}
    assert {"person", "car", "traffic light", "stop sign"} <= names


def test_the_documented_coco_count_is_the_rules_count():
    n_coco = make_demo_data_module.parse_args([]).n_coco
    assert f"coco_kept_count({n_coco}) = {coco_kept_count(n_coco)}" in make_demo_data_module.__doc__


@pytest.mark.parametrize("shape", [(5, 7), (30, 20)])
@pytest.mark.parametrize("first", [0, 1])
def test_uncompressed_rle_round_trip(shape, first):
    mask = np.random.default_rng(0).random(shape) < 0.4
    mask[0, 0] = first
    rle = uncompressed_rle(mask)
    assert sum(rle["counts"]) == mask.size and (rle["counts"][0] == 0) == bool(first)
    decoded = mask_utils.decode(mask_utils.frPyObjects(rle, *shape))
    np.testing.assert_array_equal(decoded, mask)


def test_ood_objects_in_every_test_image(demo_raw):
    laf = sorted((demo_raw / "lost_and_found" / "gtCoarse").rglob("*_labelIds.png"))
    fishy = sorted((demo_raw / "fishyscapes").rglob("*.png"))
    assert len(laf) == TINY["n_lostandfound"] and len(fishy) == 2 * TINY["n_fishyscapes"]
    for path in laf:
        ids = np.array(Image.open(path))
        assert np.isin(ids, LAF_OBJECTS).any() and (ids == 1).any() and (ids == 0).any(), path
    for path in fishy:
        labels = np.array(Image.open(path))
        assert (labels == 1).any() and (labels == 0).any() and (labels == 255).any(), path
        assert set(np.unique(labels).tolist()) <= {0, 1, 255}


def vivid_share(image: np.ndarray) -> np.ndarray:
    """Per pixel: saturated and bright in one of the hues kept for OoD objects (not sky/sign blue,
    not vegetation green, not olive)."""
    hsv = np.array(Image.fromarray(image).convert("HSV")).astype(float)
    hue = hsv[..., 0] * 360 / 255
    in_family = (hue >= 265) | (hue < 45) | ((hue > 165) & (hue < 195))
    return in_family & (hsv[..., 1] > 0.55 * 255) & (hsv[..., 2] > 0.4 * 255)


def test_ood_objects_look_unlike_the_training_scenes(demo_raw):
    """The OoD family's colours are (almost) absent from the Cityscapes-like scenes and make up
    most of the obstacle pixels of the LostAndFound-like scenes."""
    scenes = [np.array(Image.open(p)) for p in (demo_raw / "cityscapes" / "leftImg8bit").rglob("*.png")]
    assert np.mean([vivid_share(s).mean() for s in scenes]) < 0.005
    vivid = []
    for label in (demo_raw / "lost_and_found" / "gtCoarse").rglob("*_labelIds.png"):
        image = str(label).replace("gtCoarse", "leftImg8bit", 1).replace("_gtCoarse_labelIds", "_leftImg8bit")
        obstacle = np.isin(np.array(Image.open(label)), LAF_OBJECTS)
        vivid.append(vivid_share(np.array(Image.open(image)))[obstacle].mean())
    assert np.mean(vivid) > 0.6


# ---------------------------------------------------------------- Fishyscapes as distributed

def test_official_fishyscapes_layouts(demo_raw, demo_official):
    names = list(files(Path(demo_official["Fishyscapes"]).parent))
    city, laf, n = r"[a-z]+_\d{6}_\d{6}", r"\d\d_[A-Za-z_0-9]+_\d{6}_\d{6}", TINY["n_fishyscapes"]
    patterns = {
        rf"fishyscapes/Static/\d{{4}}_{city}_labels\.png": n,
        rf"fishyscapes/Static/\d{{4}}_{city}_rgb\.npz": n,
        rf"fishyscapes/LostAndFound/\d{{4}}_{laf}_labels\.png": n,
    }
    for pattern, count in patterns.items():
        assert sum(bool(re.fullmatch(pattern, name)) for name in names) == count, pattern
    assert sum(name.startswith("fishyscapes/") for name in names) == sum(patterns.values())
    # The overlays' base images are the default Cityscapes val scenes, unchanged.
    default, official = files(demo_raw / "cityscapes"), files(demo_official["Cityscapes"])
    assert list(official) == [name for name in default if "/val/" in name]
    assert all(path.read_bytes() == default[name].read_bytes() for name, path in official.items())


def test_official_fishyscapes_static_overlays_change_only_the_objects(demo_official):
    labels = sorted(Path(demo_official["Fishyscapes"], "Static").glob("*_labels.png"))
    assert [p.name[:4] for p in labels] == [f"{i:04d}" for i in range(TINY["n_fishyscapes"])]
    for path in labels:
        frame = path.name[5:-len("_labels.png")]
        city = frame.split("_")[0]
        label = np.array(Image.open(path))
        ids = np.array(Image.open(Path(demo_official["Cityscapes"], "gtFine", "val", city,
                                       f"{frame}_gtFine_labelIds.png")))
        with np.load(str(path).replace("_labels.png", "_rgb.npz"), allow_pickle=False) as overlay:
            changed = overlay["rgb"].any(axis=-1)
        assert set(np.unique(label).tolist()) == {0, 1, 255} and (label[ids == 1] == 255).all()  # ego vehicle void
        assert not (changed & (label == 0)).any() and changed[label == 1].mean() > 0.9


def test_official_fishyscapes_lostandfound_frames_are_lostandfound_frames(demo_raw, demo_official):
    """Each label file's frame is a LostAndFound frame (image and gtCoarse labels) of the train
    or the test split, labelled from its label ids; the other LostAndFound files are the default ones."""
    laf_root = Path(demo_official["LostAndFound"])
    added = set()
    for path in sorted(Path(demo_official["Fishyscapes"], "LostAndFound").glob("*_labels.png")):
        frame = path.name[5:-len("_labels.png")]
        image, = laf_root.glob(f"leftImg8bit/*/*/{frame}_leftImg8bit.png")
        label_ids = Path(str(image).replace("leftImg8bit", "gtCoarse", 1).replace("_leftImg8bit", "_gtCoarse_labelIds"))
        ids = np.array(Image.open(label_ids))
        expected = np.where(ids == 1, 0, np.where(np.isin(ids, LAF_OBJECTS), 1, 255))
        np.testing.assert_array_equal(np.array(Image.open(path)), expected)
        added |= {image.relative_to(laf_root).as_posix(), label_ids.relative_to(laf_root).as_posix()}
    assert {name.split("/")[1] for name in added} == {"train", "test"}
    default, official = files(demo_raw / "lost_and_found"), files(laf_root)
    assert set(official) == set(default) | added and not set(default) & added
    assert all(official[name].read_bytes() == path.read_bytes() for name, path in default.items())


def test_official_fishyscapes_needs_enough_cityscapes_val_scenes(tmp_path, caplog):
    message = "the official Fishyscapes Static layout overlays Cityscapes val scenes: 3 frames need as many val " \
              "scenes, not 2"
    with caplog.at_level(logging.ERROR):
        assert run_main(main, ["--root", str(tmp_path / "data"), "--fishyscapes_layout", "official",
                               "--n_cityscapes_val", "2", "--n_fishyscapes", "3"]) == 1
    assert message in caplog.text and not (tmp_path / "data").exists()


def test_unknown_fishyscapes_layout(tmp_path):
    with pytest.raises(DemoDataError, match="unknown Fishyscapes layout 'zip': expected one of preconverted, official"):
        make_demo_data(tmp_path / "data", fishyscapes_layout="zip")
    assert not (tmp_path / "data").exists()


# ---------------------------------------------------------------- SegmentMeIfYouCan sets

def test_smiyc_layouts_are_the_archives_and_deterministic(demo_smiyc, tmp_path):
    root = Path(demo_smiyc["RoadAnomaly21"]).parent
    names = [n for n in files(root) if n.startswith(("segment_me/", "lost_and_found_testnoknown/"))]
    laf = r"\d\d_[A-Za-z_0-9]+_\d{6}_\d{6}"
    patterns = {
        r"segment_me/dataset_AnomalyTrack/images/[a-z]+\d{4}\.jpg": 6,
        r"segment_me/dataset_AnomalyTrack/labels_masks/validation\d{4}_labels_semantic\.png": 3,
        r"segment_me/dataset_ObstacleTrack/images/[a-z0-9-]+_\d+\.webp": 10,
        r"segment_me/dataset_ObstacleTrack/labels_masks/validation_\d+_labels_semantic\.png": 5,
        rf"lost_and_found_testnoknown/leftImg8bit/test/[^/]+/{laf}_leftImg8bit\.png": 19,
        rf"lost_and_found_testnoknown/gtCoarse/test/[^/]+/{laf}_gtCoarse_labelIds\.png": 19,
    }
    for pattern, count in patterns.items():
        assert sum(bool(re.fullmatch(pattern, n)) for n in names) == count, pattern
    assert len(names) == sum(patterns.values())
    assert {Image.open(p).format for p in (root / "segment_me").rglob("*.webp")} == {"WEBP"}
    for label in (root / "segment_me").rglob("*_labels_semantic.png"):
        assert set(np.unique(np.array(Image.open(label))).tolist()) == {0, 1, 255}, label
    again = make_demo_data(tmp_path, **{**TINY, **{k: 0 for k in ("n_cityscapes_train", "n_cityscapes_val", "n_coco",
                                                                     "n_lostandfound", "n_fishyscapes")}}, smiyc=True)
    assert again == make_demo_data_module.demo_roots(tmp_path, smiyc=True)
    ours, theirs = files(root), files(tmp_path)
    assert list(ours) == list(theirs) and all(p.read_bytes() == theirs[n].read_bytes() for n, p in ours.items())
