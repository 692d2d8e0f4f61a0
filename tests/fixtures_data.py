"""Generated data sets for the tests: one tiny set per session.

Meant to be imported by tests/conftest.py (`from tests.fixtures_data import *`) so that every
test module shares one generation; a module may also import the fixtures it uses itself.
"""
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from preparation.make_demo_data import demo_roots, make_demo_data
from preparation.prepare_coco_segmentation import prepare_coco_segmentation

# 10 COCO images, of which make_demo_data.coco_kept_count(10) survive the preparation filter.
TINY = dict(height=48, width=96, n_cityscapes_train=10, n_cityscapes_val=3, n_coco=10,
            n_lostandfound=4, n_fishyscapes=3, seed=0)

__all__ = ["TINY", "demo_raw", "demo_data", "demo_official", "demo_smiyc", "fishyscapes_official_image"]


@pytest.fixture(scope="session")
def demo_raw(tmp_path_factory):
    """Folder of the tiny generated set exactly as make_demo_data writes it. Do not modify."""
    root = tmp_path_factory.mktemp("demo_raw")
    make_demo_data(root, **TINY)
    return root


@pytest.fixture(scope="session")
def demo_data(demo_raw, tmp_path_factory):
    """Roots (by data set name) of a copy of the tiny set with the COCO masks prepared. Do not modify."""
    root = tmp_path_factory.mktemp("demo") / "data"
    shutil.copytree(demo_raw, root)
    roots = demo_roots(root)
    prepare_coco_segmentation(roots["COCO"])
    return roots


@pytest.fixture(scope="session")
def demo_official(tmp_path_factory):
    """Roots of a tiny set with the Fishyscapes sets as the archives hold them (no COCO, no
    Cityscapes train scenes: nothing reads them). Do not modify."""
    root = tmp_path_factory.mktemp("demo_official")
    return make_demo_data(root, **{**TINY, "n_coco": 0, "n_cityscapes_train": 0}, fishyscapes_layout="official")


@pytest.fixture(scope="session")
def demo_smiyc(tmp_path_factory):
    """Roots of a tiny set with the SegmentMeIfYouCan sets (make_demo_data's smiyc) and no other
    frames. Do not modify."""
    root = tmp_path_factory.mktemp("demo_smiyc")
    empty = dict(n_cityscapes_train=0, n_cityscapes_val=0, n_coco=0, n_lostandfound=0, n_fishyscapes=0)
    return make_demo_data(root, **{**TINY, **empty}, smiyc=True)


def fishyscapes_official_image(label_path, roots) -> np.ndarray:
    """The image of a Fishyscapes frame as distributed, put together here from the files by
    docs/BENCHMARKS.md section 1: the Cityscapes val image plus the overlay, clipped, for Static;
    the LostAndFound image of the frame, found in whichever split holds it, for LostAndFound."""
    label_path = Path(label_path)
    frame = label_path.name[len("0000_"):-len("_labels.png")]
    if label_path.parent.name == "Static":
        base = Path(roots["Cityscapes"], "leftImg8bit", "val", frame.split("_")[0], f"{frame}_leftImg8bit.png")
        with np.load(str(label_path).replace("_labels.png", "_rgb.npz")) as overlay:
            return np.clip(np.array(Image.open(base)).astype(int) + overlay["rgb"], 0, 255).astype(np.uint8)
    image, = Path(roots["LostAndFound"], "leftImg8bit").glob(f"*/*/{frame}_leftImg8bit.png")
    return np.array(Image.open(image))
