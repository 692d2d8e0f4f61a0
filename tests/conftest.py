"""Test fixtures: the repository on sys.path, the reference's golden data (tests/golden), the
checkpoint layouts (tests/checkpoint_layouts), generated data sets."""
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TESTS = REPO / "tests"
# Every test, and every script a test starts, reads this fixed configuration, not the user's config.py.
os.environ["META_OOD_CONFIG"] = str(TESTS / "fixed_config.py")


def pytest_configure(config):
    # pycocotools 2.0.11 itself trips numpy 2's copy-keyword deprecation on every mask decode
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning:pycocotools.*")


@pytest.fixture(scope="session")
def golden_dir():
    return TESTS / "golden"


@pytest.fixture(scope="session")
def layouts_dir():
    return TESTS / "checkpoint_layouts"


from tests.fixtures_data import demo_data, demo_official, demo_raw, demo_smiyc  # noqa: E402,F401  session-wide generated data sets
