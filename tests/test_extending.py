"""The README's "Extending" section, done as a newcomer would: an evaluation data set added in one
file plus one registry entry runs through meta_classification.py and evaluation.py; its root flag,
-val choice and output folder follow from its spec alone."""
import importlib.util
import json
import os
import shutil
from pathlib import Path

import pytest
import torch

import evaluation
import meta_classification
from src import dataset as registry
from src import paths
from src.errors import run_main
from src.model import build_network
from src.settings import build_parser, default_config, parse_run_config

MODEL = "DeepLabV3+_MobileNetV3"

# The whole new data set: frames <root>/<split>/<name>_image.png with <name>_label.png (0 road,
# 1 puddle, 255 void).
PUDDLES = '''
import os

from src.dataset.base import SegmentationDataset, find_files, require_dir
from src.dataset.spec import DatasetSpec, Split
from src.settings import INFERENCE


class Puddles(SegmentationDataset):
    spec = DatasetSpec("Puddles", "eval", "PUDDLES_ROOT", "<split>/<name>_image.png with <name>_label.png",
                       {"val": Split("puddles_eval", 3)}, INFERENCE)
    train_id_in = 0
    train_id_out = 1

    def __init__(self, root, split="val", transform=None):
        require_dir(os.path.join(root, split), "Puddles split folder", self.spec.layout)
        labels = find_files(os.path.join(root, split, "*_label.png"))
        super().__init__([label.replace("_label.png", "_image.png") for label in labels], labels, transform)
'''


@pytest.fixture
def puddles(tmp_path, monkeypatch, demo_data):
    """The new module, registered; its frames are the tiny Fishyscapes-like scenes renamed."""
    module_file = tmp_path / "puddles.py"
    module_file.write_text(PUDDLES)
    spec = importlib.util.spec_from_file_location("puddles", module_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setitem(registry.DATASETS, "Puddles", module.Puddles)  # the one registry entry
    root = tmp_path / "puddles"
    (root / "val").mkdir(parents=True)
    for label in sorted((Path(demo_data["Fishyscapes"]) / "Static").glob("*.png")):
        shutil.copy(label, root / "val" / f"{label.stem}_label.png")
        shutil.copy(label.with_suffix(".jpg"), root / "val" / f"{label.stem}_image.png")
    return root


def test_a_new_evaluation_set_runs_through_both_scripts(puddles, tmp_path, capsys):
    torch.manual_seed(0)
    ckpt = tmp_path / "baseline.pth"
    torch.save({"state_dict": build_network(MODEL, 19).state_dict()}, ckpt)
    argv = ["-val", "Puddles", "--puddles_root", str(puddles), "-epoch", "0", "-model", MODEL,
            "--io_root", str(tmp_path / "io"), "--init_ckpt", str(ckpt), "--num_workers", "0",
            "--segment_workers", "1"]
    help_text = build_parser("evaluation", default_config()).format_help()
    assert "--puddles_root PUDDLES_ROOT" in help_text and "Puddles root: <split>/<name>_image.png" in help_text
    assert run_main(meta_classification.main, argv) == 0
    assert run_main(evaluation.main, [*argv, "-pixel", "-segment"]) == 0
    cfg = parse_run_config("evaluation", argv)
    assert paths.eval_name(cfg) == "puddles_eval"
    folder = paths.labels_dir(cfg, 0)
    assert sorted(os.listdir(folder)) == sorted([f"{i:04d}.npz" for i in range(3)] + ["identity.json"])
    results = json.loads(open(paths.evaluation_file(cfg)).read())
    assert results["configs"]["pixel"]["inputs"]["data"]["images"] == 3
    assert set(results["pixel"]["baseline"]) == {"paper", "exact"}
    assert "Puddles" in capsys.readouterr().out


def test_a_data_set_root_left_unset_is_one_line(puddles, capsys):
    with pytest.raises(registry.DatasetError, match="Puddles root not set: set PUDDLES_ROOT in config.py or "
                                                    "pass --puddles_root"):
        registry.build_dataset("Puddles", default_config())
