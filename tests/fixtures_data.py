"""Generated data sets for the tests: one tiny set per session.

Meant to be imported by tests/conftest.py (`from tests.fixtures_data import *`) so that every
test module shares one generation; a module may also import the fixtures it uses itself.
"""
import shutil

import pytest

from preparation.make_demo_data import demo_roots, make_demo_data
from preparation.prepare_coco_segmentation import prepare_coco_segmentation

# 10 COCO images: indices 1, 5, 9 hold an excluded class and 3, 8 are small, so 5 survive.
TINY = dict(height=48, width=96, n_cityscapes_train=10, n_cityscapes_val=3, n_coco=10,
            n_lostandfound=4, n_fishyscapes=3, seed=0)

__all__ = ["TINY", "demo_raw", "demo_data"]


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
