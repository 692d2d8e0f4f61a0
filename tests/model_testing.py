"""Shared by the model tests: a fixed thread count and the checkpoint manifests."""
import json

import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def two_threads():
    """Two CPU threads in every test of a module that imports this fixture."""
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)


def read_manifest(layouts_dir, name):
    """tests/checkpoint_layouts/<name>.json: the tensors of the published checkpoint of network `name`."""
    return json.loads((layouts_dir / f"{name}.json").read_text())
