"""Shared test fixtures: the repository on sys.path, the shared golden data, generated data sets."""
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SHARED = Path(os.environ.get("METAOOD_SHARED", REPO.parent / "shared"))


def pytest_configure(config):
    # pycocotools 2.0.11 itself trips numpy 2's copy-keyword deprecation on every mask decode
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning:pycocotools.*")


@pytest.fixture(scope="session")
def shared_dir():
    if not SHARED.is_dir():
        pytest.fail(f"shared data folder not found at {SHARED} (set METAOOD_SHARED)")
    return SHARED


@pytest.fixture(scope="session")
def golden_dir(shared_dir):
    return shared_dir / "golden"


from tests.fixtures_data import demo_data, demo_raw  # noqa: E402,F401  session-wide generated data sets
