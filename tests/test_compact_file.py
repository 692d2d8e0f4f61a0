"""The compact per-image files: what is written comes back as it was; a file that is damaged or of
another kind is refused in one line naming the file and the commands that write it again."""
import numpy as np
import pytest

from src.atomic import OutputFileError, write_npz
from src.compact_file import (read_image_histograms, read_labels, read_score_map, write_image_histograms,
                              write_labels, write_score_map)
from src.pixel_metrics import ScoreHistogram

RERUN = "Delete it and run meta_classification.py -prepare or evaluation.py (with the same settings) again"


def _refused(read, path, problem):
    with pytest.raises(OutputFileError) as info:
        read(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {problem}") and message.endswith(RERUN) and "\n" not in message


def _shares():
    rng = np.random.default_rng(0)
    values = rng.random(500).astype(np.float32), rng.random(50).astype(np.float32)
    return {"paper": ScoreHistogram(100).image_histogram(*values),
            "exact": ScoreHistogram(1000, value_range=None).image_histogram(*(v * 40 - 20 for v in values))}


def test_what_is_written_comes_back(tmp_path):
    gt_train = np.random.default_rng(1).integers(0, 3, (6, 9)).astype(np.uint8)
    write_labels(tmp_path / "l.npz", gt_train, gt_train[::-1], "images/é 0.png")
    got = read_labels(tmp_path / "l.npz")
    np.testing.assert_array_equal(got[0], gt_train)
    np.testing.assert_array_equal(got[1], gt_train[::-1])
    assert got[2] == "images/é 0.png"
    score = np.linspace(0, 1, 54, dtype=np.float32).reshape(6, 9)
    write_score_map(tmp_path / "s.npz", score)
    assert read_score_map(tmp_path / "s.npz").dtype == np.float16
    np.testing.assert_array_equal(read_score_map(tmp_path / "s.npz"), score.astype(np.float16))
    shares = _shares()
    write_image_histograms(tmp_path / "h.npz", shares)
    got = read_image_histograms(tmp_path / "h.npz", {"paper": 100, "exact": None})
    assert list(got) == ["paper", "exact"]
    for protocol, share in shares.items():
        for a, b in zip(got[protocol], share):
            np.testing.assert_array_equal(a, b)


def test_damaged_or_other_files_are_refused(tmp_path):
    path = tmp_path / "x.npz"
    for read in (read_labels, read_score_map, lambda p: read_image_histograms(p, {"exact": 10})):
        path.write_bytes(b"not a zip")
        _refused(read, path, "not an .npz archive")
    write_npz(path, {"gt_train_ids": np.zeros((2, 2), np.int64), "gt_label_ids": np.zeros((2, 2), np.uint8),
                     "image_path": np.array("a.png")})
    _refused(read_labels, path, "gt_train_ids, gt_label_ids, image_path int64 (2, 2)")
    write_npz(path, {"score": np.zeros((2, 2), np.float32)})
    _refused(read_score_map, path, "found score float32 (2, 2)")
    write_image_histograms(path, _shares())
    _refused(lambda p: read_image_histograms(p, {"paper": 100}), path, "arrays paper_in")
    _refused(lambda p: read_image_histograms(p, {"paper": 50, "exact": None}), path,
             "paper counts of 100 bins, not 50 (another --bins)")
