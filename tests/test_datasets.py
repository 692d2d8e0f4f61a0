"""The data sets on generated data: sizes, dtypes, label values, id mappings, the training mix,
the joint transforms, and the messages for folders without the expected layout."""
import dataclasses
import glob
import logging
import os
import pickle
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from preparation.make_demo_data import coco_kept_count
from src.dataset import (COCO, DATASETS, Cityscapes, CityscapesCOCO, DatasetError, Fishyscapes, LostAndFound,
                         LostAndFoundNoKnown, RoadAnomaly21, RoadObstacle21, build_dataset)
from src.dataset.base import SegmentationDataset
from src.dataset.lost_and_found_no_known import kept_frames
from src.dataset.transforms import IMAGENET_MEAN, IMAGENET_STD, apply_transform, training_transform
from src.settings import default_config, parse_run_config
from tests.fixtures_data import TINY, fishyscapes_official_image

H, W = TINY["height"], TINY["width"]
CITYSCAPES_VALUES = set(range(19)) | {255}
LAF_OBJECTS = list(range(2, 31)) + [32, 35, 40, 41, 42, 43]  # 43: "Kid (crawling)"
LAF_NON_HAZARDS = [31, 33, 34, 36, 37, 38, 39]
N_COCO_KEPT = coco_kept_count(TINY["n_coco"])


def values(dataset) -> set:
    return set().union(*(np.unique(dataset.raw_item(i)[1]).tolist() for i in range(len(dataset))))


def unnormalized(image: torch.Tensor) -> np.ndarray:
    mean, std = torch.tensor(IMAGENET_MEAN)[:, None, None], torch.tensor(IMAGENET_STD)[:, None, None]
    return ((image * std + mean) * 255).permute(1, 2, 0).numpy()


def check_item(dataset, i, shape):
    image, target = dataset[i]
    assert image.shape == (3, *shape) and image.dtype == torch.float32
    assert target.shape == shape and target.dtype == torch.int64
    raw_image, raw_target = dataset.raw_item(i)
    np.testing.assert_allclose(unnormalized(image), raw_image, atol=1e-3)  # normalized with ImageNet stats
    np.testing.assert_array_equal(target.numpy(), raw_target)


# ---------------------------------------------------------------- each data set

@pytest.mark.parametrize("split", ["train", "val"])
def test_cityscapes(demo_data, split):
    ds = Cityscapes(demo_data["Cityscapes"], split)
    assert len(ds) == TINY[f"n_cityscapes_{split}"] == len(ds.images)
    assert (ds.num_classes, ds.void_id) == (19, 255)
    check_item(ds, 0, (H, W))
    assert {0, 1, 2, 10, 255} <= values(ds) <= CITYSCAPES_VALUES
    assert all(t.endswith("_gtFine_labelTrainIds.png") for t in ds.targets)
    for i in range(len(ds)):
        np.testing.assert_array_equal(ds.train_ids(i), np.array(Image.open(ds.targets[i])))


def test_cityscapes_label_ids_give_the_train_ids(demo_data, tmp_path):
    root = tmp_path / "cityscapes"
    shutil.copytree(demo_data["Cityscapes"], root)
    for path in glob.glob(str(root / "gtFine" / "*" / "*" / "*_labelTrainIds.png")):
        os.remove(path)
    with_train_ids, from_label_ids = Cityscapes(demo_data["Cityscapes"]), Cityscapes(str(root))
    assert all(t.endswith("_gtFine_labelIds.png") for t in from_label_ids.targets)
    for i in range(len(with_train_ids)):
        np.testing.assert_array_equal(from_label_ids[i][1], with_train_ids[i][1])
        np.testing.assert_array_equal(from_label_ids.label_ids(i), np.array(Image.open(from_label_ids.targets[i])))


def test_coco(demo_data):
    ds = COCO(demo_data["COCO"])
    assert len(ds) == N_COCO_KEPT and (ds.train_id_in, ds.train_id_out) == (0, 254)
    image, target = ds[0]
    assert image.shape[0] == 3 and min(image.shape[1:]) >= 480 and target.shape == image.shape[1:]
    assert values(ds) == {0, 254}
    assert [os.path.basename(p)[:-4] for p in ds.images] == [os.path.basename(p)[:-4] for p in ds.targets]


def test_lost_and_found(demo_data):
    ds = LostAndFound(demo_data["LostAndFound"])
    assert len(ds) == TINY["n_lostandfound"] and (ds.train_id_in, ds.train_id_out) == (1, 2)
    check_item(ds, 0, (H, W))
    assert {1, 2, 255} <= values(ds) <= {0, 1, 2, 255}
    for i in range(len(ds)):
        label_ids = ds.label_ids(i)
        assert label_ids.dtype == np.uint8 and label_ids.shape == (H, W)
        assert set(np.unique(label_ids).tolist()) & set(LAF_OBJECTS)


@pytest.mark.parametrize("split", ["Static", "LostAndFound"])
def test_fishyscapes(demo_data, split, caplog):
    with caplog.at_level(logging.INFO):
        ds = Fishyscapes(demo_data["Fishyscapes"], split)
    assert len(ds) == TINY["n_fishyscapes"] and (ds.train_id_in, ds.train_id_out) == (0, 1)
    check_item(ds, 0, (H, W))
    assert values(ds) == {0, 1, 255}
    assert all(p.endswith(".jpg") for p in ds.images)
    np.testing.assert_array_equal(ds.label_ids(0), np.zeros((H, W), np.uint8))
    assert [r.getMessage().rsplit("layout ", 1)[1] for r in caplog.records if r.levelno == logging.INFO] == \
        ["pre-converted"]


@pytest.mark.parametrize("split", ["Static", "LostAndFound"])
def test_fishyscapes_as_distributed(demo_official, split, caplog):
    cfg = dataclasses.replace(default_config(), cityscapes_root=demo_official["Cityscapes"],
                              lostandfound_root=demo_official["LostAndFound"],
                              fishyscapes_root=demo_official["Fishyscapes"])
    with caplog.at_level(logging.INFO):
        ds = Fishyscapes.from_config(cfg, split)
    assert len(ds) == TINY["n_fishyscapes"] and ds.split == split
    assert ds.targets == sorted(glob.glob(os.path.join(cfg.fishyscapes_root, split, "*_labels.png")))
    check_item(ds, 0, (H, W))
    assert values(ds) == {0, 1, 255}
    for i, label in enumerate(ds.targets):
        assert os.path.isfile(ds.images[i])  # a real file, named in the probs files
        np.testing.assert_array_equal(ds.raw_item(i)[0], fishyscapes_official_image(label, demo_official))
        np.testing.assert_array_equal(ds.label_ids(i), np.zeros((H, W), np.uint8))
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert len(infos) == 1 and "layout as distributed" in infos[0]
    if split == "LostAndFound":  # frames of both LostAndFound splits are found
        assert {p.split(os.sep)[-3] for p in ds.images} == {"train", "test"}


def test_fishyscapes_static_overlays_are_clipped(demo_official):
    """The generated overlays push some pixels outside 0..255: the images above are clipped sums."""
    ds = Fishyscapes(demo_official["Fishyscapes"], "Static", cityscapes_root=demo_official["Cityscapes"])
    unclipped = []
    for i in range(len(ds)):
        with np.load(ds.overlays[i]) as overlay:
            unclipped.append(np.array(Image.open(ds.images[i])).astype(int) + overlay["rgb"])
    assert any(((u < 0) | (u > 255)).any() for u in unclipped)


@pytest.mark.parametrize("count, warned", [(30, False), (29, True)])
def test_fishyscapes_frame_count_is_checked(tmp_path, caplog, count, warned):
    folder = tmp_path / "Static"
    folder.mkdir()
    for i in range(count):
        Image.fromarray(np.zeros((2, 4), np.uint8)).save(folder / f"{i:04d}.png")
        Image.fromarray(np.zeros((2, 4, 3), np.uint8)).save(folder / f"{i:04d}.jpg")
    cfg = dataclasses.replace(default_config(), fishyscapes_root=str(tmp_path), fishyscapes_split="Static")
    with caplog.at_level(logging.INFO):
        assert len(build_dataset("Fishyscapes", cfg)) == count
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ([f"Fishyscapes Static: 29 frames in {tmp_path}, but the official set has 30"]
                        if warned else [])


# ---------------------------------------------------------------- LostAndFound label ids

def laf_with_label(root, label: np.ndarray, train_ids=None) -> LostAndFound:
    name = "city_000000_000010"
    Image.fromarray(np.zeros((*label.shape, 3), np.uint8)).save(_folder(root, "leftImg8bit") / f"{name}_leftImg8bit.png")
    Image.fromarray(label).save(_folder(root, "gtCoarse") / f"{name}_gtCoarse_labelIds.png")
    if train_ids is not None:
        Image.fromarray(train_ids).save(_folder(root, "gtCoarse") / f"{name}_gtCoarse_labelTrainIds.png")
    return LostAndFound(str(root))


def _folder(root, kind):
    folder = root / kind / "test" / "city"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.mark.parametrize("ids, train_id", [
    ([0], 255),  # unlabeled: void
    ([1], 1),  # free road: in-distribution
    (LAF_OBJECTS, 2),  # obstacles: OoD
    (LAF_NON_HAZARDS, 0),  # random non-hazards: neither
], ids=["void", "free", "objects", "non_hazards"])
def test_lost_and_found_id_mapping(tmp_path, ids, train_id):
    label = np.array([ids * 2], dtype=np.uint8)
    ds = laf_with_label(tmp_path, label)
    np.testing.assert_array_equal(ds[0][1].numpy(), np.full(label.shape, train_id))
    np.testing.assert_array_equal(ds.label_ids(0), label)


@pytest.mark.parametrize("ids, unexpected", [([0, 44, 1], "44"), ([254, 100, 255, 101, 102], "100..102, 254, 255")])
def test_lost_and_found_ids_outside_the_table_are_named(tmp_path, ids, unexpected):
    ds = laf_with_label(tmp_path, np.array([ids], dtype=np.uint8))
    with pytest.raises(DatasetError) as err:
        ds[0]
    assert str(err.value) == (f"label {ds.targets[0]} holds unexpected values {unexpected}: "
                              "expected LostAndFound label ids 0..43")


@pytest.mark.parametrize("name, values", [("Cityscapes", "Cityscapes label ids 0..33"),
                                          ("LostAndFound", "LostAndFound label ids 0..43")])
def test_label_ids_outside_the_table_are_named_in_the_label_ids_too(demo_data, tmp_path, name, values):
    """label_ids() reads the _labelIds.png file also where the train ids come from a _labelTrainIds.png."""
    root = tmp_path / "copy"
    shutil.copytree(demo_data[name], root)
    ds = DATASETS[name](str(root), DATASETS[name].spec.default_split)
    path = ds.label_id_files[0]
    label = np.array(Image.open(path))
    label[0, 0] = 200
    Image.fromarray(label).save(path)
    with pytest.raises(DatasetError, match=f"label {path} holds unexpected values 200: expected {values}$"):
        ds.label_ids(0)


def test_lost_and_found_prefers_train_ids_file(tmp_path):
    label = np.array([[1, 5, 31, 0]], dtype=np.uint8)
    train_ids = np.array([[255, 1, 2, 0]], dtype=np.uint8)
    ds = laf_with_label(tmp_path, label, train_ids)
    np.testing.assert_array_equal(ds[0][1].numpy(), train_ids)
    np.testing.assert_array_equal(ds.label_ids(0), label)


# ---------------------------------------------------------------- the training mix

def mix(demo_data, factor=0.1, **kwargs) -> CityscapesCOCO:
    return CityscapesCOCO(demo_data["Cityscapes"], demo_data["COCO"], factor, **kwargs)


@pytest.mark.parametrize("factor", [0.1, 0.3, 0.5])
def test_mix_size(demo_data, factor):
    n_cs = TINY["n_cityscapes_train"]
    ds = mix(demo_data, factor)
    assert len(ds) == n_cs + int(factor * n_cs) == len(ds.images)
    assert ds.images[:n_cs] == Cityscapes(demo_data["Cityscapes"]).images
    assert set(ds.images[n_cs:]) <= set(COCO(demo_data["COCO"]).images)
    assert len(set(ds.images[n_cs:])) == int(factor * n_cs)


def test_mix_redrawn_per_epoch(demo_data):
    ds, again, other_seed = mix(demo_data, 0.3), mix(demo_data, 0.3), mix(demo_data, 0.3, seed=1)
    subsets = []
    for epoch in range(6):
        for d in (ds, again, other_seed):
            d.set_epoch(epoch)
        assert ds.images == again.images
        subsets.append((tuple(ds.images), tuple(other_seed.images)))
    assert len({s for s, _ in subsets}) > 1
    assert any(s != o for s, o in subsets)
    ds.set_epoch(2)
    assert tuple(ds.images) == subsets[2][0]


def test_mix_labels(demo_data):
    ds, void = mix(demo_data, 0.5), mix(demo_data, 0.5, coco_background_void=True)
    n_cs = TINY["n_cityscapes_train"]
    assert (ds.train_id_in, ds.train_id_out) == (0, 254)
    for i in range(n_cs, len(ds)):
        label, label_void = ds[i][1], void[i][1]
        assert set(label.unique().tolist()) == {0, 254}
        assert torch.equal(label_void, torch.where(label == 0, 255, label))
    np.testing.assert_array_equal(ds[0][1], Cityscapes(demo_data["Cityscapes"])[0][1])


def test_mix_needs_enough_coco(demo_data):
    with pytest.raises(DatasetError, match=f"10 COCO images wanted.*only {N_COCO_KEPT} prepared"):
        mix(demo_data, 1.0)


def test_mix_without_coco_needs_no_prepared_coco(demo_data, tmp_path):
    """The Cityscapes-only baseline (subsampling factor 0) runs before COCO is prepared."""
    ds = CityscapesCOCO(demo_data["Cityscapes"], str(tmp_path / "COCO" / "2017"), 0)
    ds.set_epoch(1)
    assert ds.images == Cityscapes(demo_data["Cityscapes"]).images and len(ds) == TINY["n_cityscapes_train"]
    with pytest.raises(DatasetError, match="COCO root"):
        CityscapesCOCO(demo_data["Cityscapes"], str(tmp_path / "COCO" / "2017"), 0.1)


def test_build_dataset_from_config(demo_data, demo_smiyc):
    cfg = dataclasses.replace(default_config(), cityscapes_root=demo_data["Cityscapes"], coco_root=demo_data["COCO"],
                              lostandfound_root=demo_data["LostAndFound"],
                              fishyscapes_root=demo_data["Fishyscapes"], fishyscapes_split="LostAndFound",
                              ood_subsampling_factor=0.3, roadanomaly21_root=demo_smiyc["RoadAnomaly21"],
                              roadobstacle21_root=demo_smiyc["RoadObstacle21"])
    lengths = {"Cityscapes": 10, "COCO": N_COCO_KEPT, "Cityscapes+COCO": 13, "LostAndFound": 4, "Fishyscapes": 3,
               "RoadAnomaly21": 3, "RoadObstacle21": 3, "LostAndFound-testNoKnown": 4}
    for name, cls in DATASETS.items():
        ds = build_dataset(name, cfg)
        assert type(ds) is cls and len(ds) == lengths[name]
    assert build_dataset("Fishyscapes", cfg).split == "LostAndFound"
    assert len(build_dataset("Cityscapes", cfg, split="val")) == 3
    with pytest.raises(ValueError, match="unknown data set 'Kitti'.*Cityscapes"):
        build_dataset("Kitti", cfg)


def test_datasets_survive_pickling(demo_data):
    """DataLoader workers started by spawn receive the data set pickled."""
    for ds in (mix(demo_data, 0.3, transform=training_transform(32)), LostAndFound(demo_data["LostAndFound"])):
        copy = pickle.loads(pickle.dumps(ds))
        torch.manual_seed(0)
        image, target = ds[len(ds) - 1]
        torch.manual_seed(0)
        image_copy, target_copy = copy[len(copy) - 1]
        assert torch.equal(image, image_copy) and torch.equal(target, target_copy)


# ---------------------------------------------------------------- transforms

def coded_pair(height, width, seed=0):
    """An image whose red channel encodes the label and green/blue the pixel's row/column."""
    rng = np.random.default_rng(seed)
    label = rng.choice(np.array([0, 3, 7, 18, 255], np.uint8), size=(height // 4 + 1, width // 4 + 1))
    label = np.kron(label, np.ones((4, 4), np.uint8))[:height, :width]
    rows, cols = np.mgrid[0:height, 0:width]
    image = np.stack([label // 2, rows, cols], axis=-1).astype(np.uint8)
    return image, label


def test_training_crop_keeps_image_and_label_aligned():
    image, label = coded_pair(60, 90)
    transform = training_transform(32)
    flipped = straight = 0
    for seed in range(30):
        torch.manual_seed(seed)
        out_image, out_label = apply_transform(transform, image, label)
        assert out_image.shape == (3, 32, 32) and out_label.shape == (32, 32) and out_label.dtype == torch.int64
        pixels = np.round(unnormalized(out_image)).astype(int)
        rows, cols = pixels[..., 1], pixels[..., 2]
        # Each output pixel is one input pixel: the label there, unchanged.
        np.testing.assert_array_equal(out_label.numpy(), label[rows, cols])
        np.testing.assert_array_equal(pixels[..., 0], label[rows, cols] // 2)
        assert (np.diff(rows, axis=0) == 1).all()
        step = np.unique(np.diff(cols, axis=1))
        flipped += step.tolist() == [-1]
        straight += step.tolist() == [1]
    assert flipped + straight == 30 and flipped > 0 and straight > 0


def test_training_transform_is_reproducible_with_torch_seed():
    image, label = coded_pair(60, 90)
    transform = training_transform(32)
    torch.manual_seed(5)
    first = apply_transform(transform, image, label)
    torch.manual_seed(5)
    second = apply_transform(transform, image, label)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


@pytest.mark.parametrize("shape", [(20, 40), (40, 20), (20, 20)])
def test_smaller_image_is_resized_to_the_crop(shape):
    image, label = coded_pair(*shape)
    torch.manual_seed(0)
    out_image, out_label = apply_transform(training_transform(32), image, label)
    assert out_image.shape == (3, 32, 32) and out_label.shape == (32, 32)
    # Nearest neighbour: only values of the input label, each taken from the right place.
    assert set(out_label.unique().tolist()) <= set(np.unique(label).tolist())
    rows, cols = np.arange(32) * shape[0] // 32, np.arange(32) * shape[1] // 32
    out = out_label.numpy()
    assert (out == label[rows][:, cols]).all() or (out == label[:, ::-1][rows][:, cols]).all()  # flipped first


def test_evaluation_transform_keeps_full_resolution(demo_data):
    ds = Cityscapes(demo_data["Cityscapes"], "val")
    image, target = ds[1]
    assert image.shape == (3, H, W)
    np.testing.assert_array_equal(target.numpy(), ds.train_ids(1))


def test_training_transform_in_a_dataset(demo_data):
    ds = Cityscapes(demo_data["Cityscapes"], transform=training_transform(32))
    torch.manual_seed(0)
    image, target = ds[0]
    assert image.shape == (3, 32, 32) and target.shape == (32, 32)
    assert set(target.unique().tolist()) <= set(np.unique(ds.train_ids(0)).tolist())


# ---------------------------------------------------------------- bad layouts

@pytest.fixture
def cityscapes_copy(demo_data, tmp_path):
    root = tmp_path / "cityscapes"
    shutil.copytree(demo_data["Cityscapes"], root)
    return root


@pytest.mark.parametrize("cls", [Cityscapes, LostAndFound, Fishyscapes, COCO])
def test_missing_root(tmp_path, cls):
    root = tmp_path / "nowhere"
    with pytest.raises(DatasetError, match=f"root.*not found: {root} \\(expected files {root}"):
        cls(str(root))


@pytest.mark.parametrize("name, split, pattern", [
    ("Cityscapes", "test", "leftImg8bit/test/<city>/<name>_leftImg8bit.png"),
    ("LostAndFound", "train", "leftImg8bit/train/<city>/<city>_<seq>_<frame>_leftImg8bit.png"),
    ("COCO", "val", "annotations/ood_seg_val2017/<id:012d>.png"),
])
def test_missing_split_folder(demo_data, name, split, pattern):
    with pytest.raises(DatasetError, match="not found") as err:
        DATASETS[name](demo_data[name], split)
    assert pattern in str(err.value)


def test_image_without_label(cityscapes_copy):
    base = cityscapes_copy / "gtFine" / "train" / "bochum" / "bochum_000000_000019_gtFine"
    os.remove(f"{base}_labelIds.png")
    os.remove(f"{base}_labelTrainIds.png")
    with pytest.raises(DatasetError, match=f"label file missing for .*bochum_000000_000019_leftImg8bit.png: "
                                           f"expected {base}_labelIds.png"):
        Cityscapes(str(cityscapes_copy))


def test_coco_image_missing(demo_data, tmp_path):
    root = tmp_path / "COCO" / "2017"
    shutil.copytree(demo_data["COCO"], root)
    masks = sorted(glob.glob(str(root / "annotations" / "ood_seg_train2017" / "*.png")))
    missing = root / "train2017" / (os.path.basename(masks[0])[:-4] + ".jpg")
    os.remove(missing)
    with pytest.raises(DatasetError, match=f"image file missing for {masks[0]}: {missing}"):
        COCO(str(root))


def test_fishyscapes_image_missing(demo_data, tmp_path):
    root = tmp_path / "fishyscapes"
    shutil.copytree(demo_data["Fishyscapes"], root)
    os.remove(root / "Static" / "0001.jpg")
    with pytest.raises(DatasetError, match=f"image file missing for {root}/Static/0001.png: {root}/Static/0001.jpg"):
        Fishyscapes(str(root))


FISHYSCAPES_PATTERNS = {
    "Static": "Static/<fs id:04d>_<Cityscapes val frame id>_labels.png with <fs id:04d>_<frame id>_rgb.npz "
              "beside it as distributed, or pre-converted {root}/Static/<name>.png with <name>.jpg beside it",
    "LostAndFound": "LostAndFound/<fs id:04d>_<LostAndFound frame id>_labels.png as distributed, or "
                    "pre-converted {root}/LostAndFound/<name>.png with <name>.jpg beside it",
}


@pytest.mark.parametrize("split", ["Static", "LostAndFound"])
@pytest.mark.parametrize("contents", ["no folder", "empty", "neither layout"])
def test_fishyscapes_without_either_layout(tmp_path, split, contents):
    if contents != "no folder":
        (tmp_path / split).mkdir()
    if contents == "neither layout":
        Image.fromarray(np.zeros((2, 4), np.uint8)).save(tmp_path / split / "frame_labels.png")
        (tmp_path / split / "0000_x_rgb.npz").write_bytes(b"")
    with pytest.raises(DatasetError) as err:
        Fishyscapes(str(tmp_path), split)
    message = str(err.value)
    assert "\n" not in message and FISHYSCAPES_PATTERNS[split].format(root=tmp_path) in message
    assert message.startswith(f"Fishyscapes split folder '{split}' not found" if contents == "no folder"
                              else f"no Fishyscapes {split} frames in {tmp_path / split}: expected {tmp_path}")


def test_fishyscapes_unknown_split(demo_data):
    with pytest.raises(DatasetError, match="unknown Fishyscapes split 'Dynamic': expected one of Static, LostAndFound"):
        Fishyscapes(demo_data["Fishyscapes"], "Dynamic")


@pytest.mark.parametrize("split, option", [("Static", "cityscapes_root"), ("LostAndFound", "lostandfound_root")])
def test_fishyscapes_as_distributed_needs_the_image_root(demo_official, split, option):
    with pytest.raises(DatasetError, match=f"Fishyscapes {split} as distributed has no images of its own: "
                                           f"give {option}"):
        Fishyscapes(demo_official["Fishyscapes"], split)


def test_fishyscapes_lostandfound_image_missing(demo_official, tmp_path):
    label = sorted(glob.glob(os.path.join(demo_official["Fishyscapes"], "LostAndFound", "*_labels.png")))[0]
    frame = os.path.basename(label)[5:-len("_labels.png")]
    city = frame.rsplit("_", 2)[0]
    expected = " or ".join(f"{tmp_path}/leftImg8bit/{split}/{city}/{frame}_leftImg8bit.png" for split in ("train", "test"))
    with pytest.raises(DatasetError, match=f"LostAndFound image missing for {label}: expected {expected}$"):
        Fishyscapes(demo_official["Fishyscapes"], "LostAndFound", lostandfound_root=str(tmp_path))


@pytest.fixture
def static_copy(demo_official, tmp_path):
    """A copy of the Fishyscapes root as distributed; its images stay in the shared Cityscapes root."""
    root = tmp_path / "fishyscapes"
    shutil.copytree(demo_official["Fishyscapes"], root)
    return root


def test_fishyscapes_static_overlay_missing(demo_official, static_copy):
    overlay = sorted((static_copy / "Static").glob("*_rgb.npz"))[1]
    os.remove(overlay)
    label = str(overlay).replace("_rgb.npz", "_labels.png")
    with pytest.raises(DatasetError, match=f"overlay file missing for {label}: {overlay}"):
        Fishyscapes(str(static_copy), cityscapes_root=demo_official["Cityscapes"])


@pytest.mark.parametrize("arrays, message", [
    ({"rgb": np.zeros((H, W - 1, 3), np.int16)}, f"overlay {{}} has shape ({H}, {W - 1}, 3), its image ({H}, {W}, 3)"),
    ({"other": np.zeros((H, W, 3), np.int16)}, "overlay {} has no array 'rgb'"),
    ({"rgb": np.array([None], dtype=object)}, "cannot read overlay {}: Object arrays cannot be loaded when "
                                              "allow_pickle=False"),
], ids=["wrong_shape", "no_rgb", "pickled"])
def test_fishyscapes_static_bad_overlay(demo_official, static_copy, arrays, message):
    ds = Fishyscapes(str(static_copy), cityscapes_root=demo_official["Cityscapes"])
    np.savez(ds.overlays[1], **arrays)
    ds.raw_item(0)
    with pytest.raises(DatasetError) as err:
        ds.raw_item(1)
    assert str(err.value) == message.format(ds.overlays[1])


def test_zero_images(tmp_path):
    (tmp_path / "leftImg8bit" / "train" / "aachen").mkdir(parents=True)
    with pytest.raises(DatasetError, match=f"no images found: nothing matches {tmp_path}/leftImg8bit/train/\\*/"
                                           f"\\*_leftImg8bit.png"):
        Cityscapes(str(tmp_path))


def test_size_mismatch(cityscapes_copy):
    label = cityscapes_copy / "gtFine" / "train" / "aachen" / "aachen_000001_000019_gtFine_labelTrainIds.png"
    Image.open(label).resize((W // 2, H)).save(label)
    with pytest.raises(DatasetError, match=f"image and label sizes differ: .*aachen_000001_000019_leftImg8bit.png "
                                           f"is {W}x{H}, {label} is {W // 2}x{H}"):
        Cityscapes(str(cityscapes_copy))


def test_unreadable_image(cityscapes_copy):
    image = cityscapes_copy / "leftImg8bit" / "train" / "bremen" / "bremen_000000_000019_leftImg8bit.png"
    image.write_bytes(b"not an image")
    with pytest.raises(DatasetError, match=f"cannot read image {image}"):
        Cityscapes(str(cityscapes_copy))


def test_truncated_image_fails_when_loaded(cityscapes_copy):
    image = cityscapes_copy / "leftImg8bit" / "train" / "bremen" / "bremen_000000_000019_leftImg8bit.png"
    image.write_bytes(image.read_bytes()[:200])  # the header survives: found at load time
    ds = Cityscapes(str(cityscapes_copy))
    with pytest.raises(DatasetError, match=f"cannot read image {image}"):
        ds[ds.images.index(str(image))]


def test_size_mismatch_found_when_loaded(demo_data, tmp_path):
    root = tmp_path / "COCO" / "2017"
    shutil.copytree(demo_data["COCO"], root)
    ds = COCO(str(root))
    Image.open(ds.targets[0]).crop((0, 0, 100, 100)).save(ds.targets[0])
    with pytest.raises(DatasetError, match=f"image and label sizes differ: {ds.images[0]} .*{ds.targets[0]} is 100x100"):
        ds[0]


# ---------------------------------------------------------------- SegmentMeIfYouCan sets

def smiyc_config(roots):
    return dataclasses.replace(default_config(), roadanomaly21_root=roots["RoadAnomaly21"],
                               roadobstacle21_root=roots["RoadObstacle21"],
                               lostandfound_root=roots["LostAndFound-testNoKnown"])


def shapes_and_values(dataset) -> list:
    return [(dataset.raw_item(i)[0].shape[:2], set(np.unique(dataset.raw_item(i)[1]).tolist()))
            for i in range(len(dataset))]


def test_road_anomaly21_splits_sizes_and_labels(demo_smiyc):
    cfg = smiyc_config(demo_smiyc)
    validation, test = (build_dataset("RoadAnomaly21", cfg, split=split) for split in ("validation", "test"))
    assert validation.frame_ids == ["validation0000", "validation0001", "validation0002"]
    assert test.frame_ids == ["airplane0000", "animals0001", "boat0002"] and test.split == "test"
    # frames of several sizes, odd ones among them; labels 0 / 1 / 255, the test split's all void
    sizes = [(H, W), (H + 5, W - 13), (H - 7, W + 9)]
    assert shapes_and_values(validation) == [(size, {0, 1, 255}) for size in sizes]
    assert shapes_and_values(test) == [(size, {255}) for size in sizes]
    assert test.targets == [None] * 3 and all(p.endswith(".jpg") for p in test.images)
    assert (validation.train_id_in, validation.train_id_out) == (0, 1)
    check_item(test, 1, sizes[1])
    assert not glob.glob(os.path.join(demo_smiyc["RoadAnomaly21"], "dataset_AnomalyTrack", "labels_masks", "a*"))


def test_road_obstacle21_splits_leave_out_the_excluded_and_extra_frames(demo_smiyc):
    cfg = smiyc_config(demo_smiyc)
    validation, test = (build_dataset("RoadObstacle21", cfg, split=split) for split in ("validation", "test"))
    assert validation.frame_ids == ["validation_1", "validation_2", "validation_30"]  # not _19, _23
    assert test.frame_ids == ["curvy-street_1", "darkasphalt2_3", "darkasphalt_2"]  # not snowstorm1, driveway
    assert all(p.endswith(".webp") for p in validation.images + test.images)
    assert [v for _, v in shapes_and_values(validation)] == [{0, 1, 255}] * 3
    assert {s for ds in (validation, test) for s, _ in shapes_and_values(ds)} == {(H, W), (H + 3, W + 5)}
    assert [v for _, v in shapes_and_values(test)] == [{255}] * 3


@pytest.mark.parametrize("fid, split", [
    ("validation_1", "validation"), ("validation_18", "validation"), ("validation_20", "validation"),
    ("validation_30", "validation"), ("validation_19", None), ("validation_21", None), ("validation_29", None),
    ("curvy-street_4", "test"), ("darkasphalt2_0", "test"), ("one-way-street_7", "test"),
    ("snowstorm2_3", None), ("driveway_1", None), ("motorwayX_1", None),
])
def test_road_obstacle21_split_rules(fid, split):
    assert [s for s in ("validation", "test") if RoadObstacle21.in_split(fid, s)] == ([split] if split else [])


def test_lost_and_found_testnoknown_frames(demo_smiyc, caplog):
    with caplog.at_level(logging.WARNING):
        ds = build_dataset("LostAndFound-testNoKnown", smiyc_config(demo_smiyc))
    # 19 test frames; sorted index 17 (10_Schlossberg_9_000005_000210) and the frames of children and
    # bicycles are left out
    assert ds.frame_ids == ["01_Hanns_Klemm_Str_45_000005_000100", "01_Hanns_Klemm_Str_45_000008_000130",
                            *(f"02_Hanns_Klemm_Str_44_000000_{30 + 10 * k:06d}" for k in range(5)),
                            *(f"04_Maurener_Weg_8_000001_{40 + 10 * k:06d}" for k in range(4)),
                            *(f"07_Festplatz_Flugfeld_000002_{50 + 10 * k:06d}" for k in range(3))]
    assert [os.path.basename(p)[:-len("_leftImg8bit.png")] for p in ds.images] == ds.frame_ids
    assert all(t.endswith("_gtCoarse_labelIds.png") and os.path.basename(t).startswith(f)
               for t, f in zip(ds.targets, ds.frame_ids))
    assert ds.split == "testNoKnown" and [v for _, v in shapes_and_values(ds)] == [{0, 1, 255}] * len(ds)
    assert "19 LostAndFound test frames" in caplog.text and "official set has 1043" in caplog.text


def test_lost_and_found_testnoknown_exclusions_on_the_official_frame_list():
    """1203 frames, in any order: 17 sorted indices, then the children's and bicycle frames."""
    known = ["15_Rechbergstr_Deckenpfronn_000000_000010", "01_Hanns_Klemm_Str_45_000006_000020",
             "01_Hanns_Klemm_Str_45_000007_000030", "10_Schlossberg_9_000004_000040"]
    fids = sorted(known + [f"05_Schafgasse_1_{k:06d}_000000" for k in range(1203 - len(known))])
    shuffled = list(np.random.default_rng(0).permutation(fids))
    kept = [shuffled[k] for k in kept_frames(shuffled)]
    dropped = {fids[k] for k in (17, 37, 55, 72, 91, 110, 129, 153, 174, 197, 218, 353, 490, 618, 686, 792, 793)}
    assert kept == [f for f in fids if f not in dropped and f not in known]
    assert len(kept) == 1203 - 17 - 4


@pytest.mark.parametrize("ids, label", [([0, 201, 254, 255], 255), ([1], 0), ([2, 31, 43, 100, 200], 1)],
                         ids=["void", "road", "anomaly"])
def test_lost_and_found_testnoknown_label_ids(tmp_path, ids, label):
    """The benchmark's mapping, the non-hazards (31) anomalies too; a labelTrainIds file is ignored."""
    laf_with_label(tmp_path, np.array([ids], np.uint8), train_ids=np.zeros((1, len(ids)), np.uint8))
    ds = LostAndFoundNoKnown(str(tmp_path))
    np.testing.assert_array_equal(ds[0][1].numpy(), np.full((1, len(ids)), label))
    np.testing.assert_array_equal(ds.label_ids(0), np.array([ids]))


def test_smiyc_splits_declare_track_labels_and_submission_name():
    tracks = {(name, split): (s.track, s.labelled, s.submission) for name, cls in DATASETS.items()
              for split, s in cls.spec.splits.items() if s.track}
    assert tracks == {("Fishyscapes", "LostAndFound"): ("anomaly", True, None),
                      ("RoadAnomaly21", "validation"): ("anomaly", True, "AnomalyTrack-all"),
                      ("RoadAnomaly21", "test"): ("anomaly", False, "AnomalyTrack-all"),
                      ("RoadObstacle21", "validation"): ("obstacle", True, "ObstacleTrack-all"),
                      ("RoadObstacle21", "test"): ("obstacle", False, "ObstacleTrack-all"),
                      ("LostAndFound-testNoKnown", "testNoKnown"): ("obstacle", True, "LostAndFound-test")}
    assert [RoadAnomaly21.spec.labelled_split(), RoadObstacle21.spec.labelled_split()] == ["validation"] * 2


def test_smiyc_roots_and_splits_are_flags_and_one_download_is_one_root():
    cfg = parse_run_config("evaluation", ["--roadanomaly21_root", "/ra", "--roadanomaly21_split", "test",
                                          "--roadobstacle21_root", "/ro", "--lostandfound_root", "/laf"])
    assert (cfg.roadanomaly21_root, cfg.roadanomaly21_split, cfg.roadobstacle21_root) == ("/ra", "test", "/ro")
    assert cfg.roadobstacle21_split == "validation"
    assert LostAndFoundNoKnown.spec.root_setting == LostAndFound.spec.root_setting == "lostandfound_root"


def test_smiyc_validation_frame_without_labels(demo_smiyc, tmp_path):
    root = tmp_path / "segment_me"
    shutil.copytree(demo_smiyc["RoadAnomaly21"], root)
    label = root / "dataset_AnomalyTrack" / "labels_masks" / "validation0001_labels_semantic.png"
    os.remove(label)
    with pytest.raises(DatasetError, match=f"label file missing for .*validation0001.jpg: {label}"):
        RoadAnomaly21(str(root), "validation")
    assert len(RoadAnomaly21(str(root), "test")) == 3  # a test split reads no label
    with pytest.raises(DatasetError, match="unknown RoadAnomaly21 split 'val': expected one of validation, test"):
        RoadAnomaly21(str(root), "val")
    with pytest.raises(DatasetError, match="RoadObstacle21 images folder not found: .*dataset_ObstacleTrack/images "
                                           r"\(expected files .*/dataset_ObstacleTrack/images/<fid>.webp"):
        RoadObstacle21(str(tmp_path))

def test_a_data_set_without_declared_label_values_takes_its_train_ids(tmp_path):
    class Ponds(SegmentationDataset):
        train_id_in, train_id_out = 0, 1
    label = tmp_path / "0000.png"
    Image.fromarray(np.array([[0, 1, 255, 77]], np.uint8)).save(label)
    Image.fromarray(np.zeros((1, 4, 3), np.uint8)).save(tmp_path / "0000.jpg")
    with pytest.raises(DatasetError, match=f"label {label} holds unexpected values 77: expected Ponds train ids "
                                           "0, 1, 255$"):
        Ponds([str(tmp_path / "0000.jpg")], [str(label)])[0]
