"""The false-positive removal stage on a small segment search: its saved result."""
import dataclasses
import json
import os

import pytest

from src import paths
from src.errors import MetaOodError
from src.fp_removal import remove_false_positives, removed_segments
from src.segment_files import read_metrics, write_metrics
from src.segment_search import run_segment_search
from src.settings import default_config
from tests.test_atomic import killed_while_writing
from tests.test_segment_search import EPOCH, N_IMAGES, OOD_INDEX, write_probs_files


@pytest.fixture
def searched(tmp_path):
    cfg = dataclasses.replace(default_config(), io_root=str(tmp_path), VALSET="Fishyscapes",
                              entropy_threshold=0.7, segment_workers=1)
    write_probs_files(cfg)
    run_segment_search(cfg, EPOCH, OOD_INDEX)
    return cfg


def test_saved_result_is_reused_only_for_the_same_images(searched):
    first = remove_false_positives(searched, EPOCH)
    assert first["image_ids"] == list(range(N_IMAGES))
    path = paths.meta_classifier_file(searched, EPOCH)
    mtime = os.stat(path).st_mtime_ns
    assert remove_false_positives(searched, EPOCH) == first and os.stat(path).st_mtime_ns == mtime
    os.remove(paths.probs_file(searched, EPOCH, 1))  # the image set changed
    again = remove_false_positives(searched, EPOCH)
    with open(path) as f:
        assert again["image_ids"] == [0, 2] == json.load(f)["image_ids"]
    assert set(removed_segments(again)) == {0, 2}


def test_inconsistent_metrics_are_named_by_their_probs_id(searched):
    os.remove(paths.probs_file(searched, EPOCH, 0))
    path = paths.metrics_file(searched, EPOCH, 2)
    metrics = read_metrics(path)
    del metrics["cprob3"]
    write_metrics(path, metrics)
    with pytest.raises(MetaOodError, match=r"metrics of image 2 differ in keys from image 1's \(missing \['cprob3'\]"):
        remove_false_positives(searched, EPOCH)


@pytest.mark.parametrize("content", ['{"image_ids": [0, 1', '{"image_ids": [0, 1, 2]}', "[]"])
def test_a_damaged_saved_result_is_a_one_line_error(searched, content):
    remove_false_positives(searched, EPOCH)
    path = paths.meta_classifier_file(searched, EPOCH)
    with open(path, "w") as f:
        f.write(content)
    with pytest.raises(MetaOodError) as info:
        remove_false_positives(searched, EPOCH)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert message.endswith("expected a meta classifier result (a JSON object). Delete it and run "
                            "meta_classification.py -removal (with the same settings) again")


def test_a_damaged_metrics_file_names_the_segment_search(searched):
    path = paths.metrics_file(searched, EPOCH, 1)
    with open(path, "r+b") as f:
        f.truncate(100)
    rerun = r"run meta_classification.py -prepare -segment \(with the same settings\) again$"
    with pytest.raises(MetaOodError, match=rerun) as info:
        remove_false_positives(searched, EPOCH)
    assert str(info.value).startswith(f"{path}: not a readable .npz file")


def test_the_removal_removes_what_a_killed_removal_left(searched):
    path = paths.meta_classifier_file(searched, EPOCH)
    left = killed_while_writing(path)
    remove_false_positives(searched, EPOCH)
    folder = os.path.dirname(path)
    assert sorted(os.listdir(folder)) == sorted(map(os.path.basename, (path, paths.identity_file(folder))))
    assert not os.path.exists(left)
