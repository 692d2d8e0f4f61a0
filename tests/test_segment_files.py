"""The segment search's .npz files: what the metaseg functions return comes back as it was; a file
that is damaged, of another kind or a pickle is refused with the command that writes it again."""
import pickle

import numpy as np
import pytest

from src.atomic import OutputFileError, write_npz
from src.metaseg import compute_metrics_components, compute_metrics_mask
from src.scores import entropy_mask
from src.segment_files import components_runs, read_components, read_metrics, write_components, write_metrics
from tests.test_segment_search import OOD_INDEX, probs_image

RERUN = "Delete it and run meta_classification.py -prepare -segment (with the same settings) again"


@pytest.fixture(scope="module")
def searched():
    """(predicted metrics, components, gt metrics, gt components) of one small image."""
    probs, gt_train, gt_label = probs_image(np.random.default_rng(3))
    ood_mask = entropy_mask(probs, 0.7)
    return (*compute_metrics_components(probs, gt_train, ood_mask, OOD_INDEX),
            *compute_metrics_mask(probs, ood_mask, gt_train, gt_label, OOD_INDEX))


def test_metrics_and_components_come_back_as_they_were(searched, tmp_path):
    for k, (metrics, components) in enumerate((searched[:2], searched[2:])):
        assert len(metrics["S"]) > 0
        write_metrics(tmp_path / f"m{k}.npz", metrics)
        write_components(tmp_path / f"c{k}.npz", components)
        got = read_metrics(tmp_path / f"m{k}.npz")
        assert list(got) == list(metrics)  # the reference's key order, not sorted
        for key, value in metrics.items():
            assert got[key].dtype == value.dtype
            np.testing.assert_array_equal(got[key], value)
        got = read_components(tmp_path / f"c{k}.npz")
        assert got.dtype == np.int32
        np.testing.assert_array_equal(got, components)


def test_a_full_size_components_map_is_small_and_comes_back(tmp_path):
    components = np.zeros((1024, 2048), np.int32)
    for k in range(1, 201):  # 200 blobs, boundary -k, inner +k, as the segment search writes them
        row, col = divmod(k * 7919, 1000)
        components[row:row + 12, 2 * col:2 * col + 12] = -k
        components[row + 1:row + 11, 2 * col + 1:2 * col + 11] = k
    components[-1, -3:] = 7  # a run that ends the map
    path = tmp_path / "c.npz"
    write_components(path, components)
    assert path.stat().st_size < components.nbytes / 200
    np.testing.assert_array_equal(read_components(path), components)
    with np.load(path) as runs:  # what np.load shows a user: the runs
        assert sorted(runs.files) == ["lengths", "shape", "starts", "values"]
        assert runs["lengths"].sum() == np.count_nonzero(components)


def test_maps_without_segments_or_of_one_segment_come_back(tmp_path):
    maps = (np.zeros((3, 5), np.int32), np.full((3, 5), 4, np.int32), np.arange(15, dtype=np.int32).reshape(3, 5))
    for components in maps:
        write_components(tmp_path / "c.npz", components)
        got = read_components(tmp_path / "c.npz")
        assert got.dtype == np.int32
        np.testing.assert_array_equal(got, components)


def _refused(read, path, problem):
    with pytest.raises(OutputFileError) as info:
        read(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {problem}") and message.endswith(RERUN) and "\n" not in message
    return message


def test_damaged_files_are_refused(searched, tmp_path):
    metrics, components = searched[:2]
    for name, write, read in (("m.npz", write_metrics, read_metrics), ("c.npz", write_components, read_components)):
        path = tmp_path / name
        write(path, metrics if read is read_metrics else components)
        path.write_bytes(path.read_bytes()[:-40])
        _refused(read, path, "not a readable .npz file (BadZipFile")
        path.write_bytes(b"")
        _refused(read, path, "not an .npz archive (it starts with b'')")


def test_a_pickle_where_a_metrics_file_belongs_is_refused(searched, tmp_path):
    """The files used to be pickles: one left from an older version is never unpickled."""
    path = tmp_path / "0000.npz"
    path.write_bytes(pickle.dumps(searched[0], protocol=pickle.HIGHEST_PROTOCOL))
    _refused(read_metrics, path, "a pickle, which is never loaded")


def test_metrics_of_the_wrong_keys_dtypes_or_lengths_are_refused(searched, tmp_path):
    metrics, components = searched[:2]
    path = tmp_path / "m.npz"
    write_components(path, components)  # a components map where metrics belong
    message = _refused(read_metrics, path, "no iou, iou0, mean_x, mean_y, S, S_in, S_bd (found shape int64 (2,)")
    assert "expected segment metrics (1-D int64 or float64 arrays of one length" in message
    write_metrics(path, {k: v for k, v in metrics.items() if k != "iou0"})
    _refused(read_metrics, path, "no iou0 (found iou float64")
    write_metrics(path, {**metrics, "S": metrics["S"].astype(np.float32)})
    _refused(read_metrics, path, f"found S float32 ({len(metrics['S'])},)")
    write_metrics(path, {**metrics, "cprob0": np.stack([metrics["cprob0"]] * 2)})
    _refused(read_metrics, path, "found cprob0 float64 (2,")
    write_metrics(path, {**metrics, "S": metrics["S"][:-1]})
    _refused(read_metrics, path, "arrays of lengths")


def test_components_of_the_wrong_keys_dtypes_or_runs_are_refused(searched, tmp_path):
    metrics, components = searched[:2]
    path = tmp_path / "c.npz"
    write_metrics(path, metrics)  # metrics where a components map belongs
    message = _refused(read_components, path, "found iou float64")
    assert "more; expected a components map (its runs: int64 shape (2,), int64 starts and lengths" in message
    write_npz(path, {"components": components})  # a map as an earlier version wrote it
    _refused(read_components, path, f"found components int32 {components.shape}")
    runs = components_runs(components)
    assert len(runs["starts"]) > 2
    bad_runs = "runs that overlap, leave the map, are empty or of value 0"
    for changed, problem in (({"values": runs["values"].astype(np.int16)}, "found shape int64 (2,), starts int64"),
                             ({"shape": np.array([3], np.int64)}, "found shape int64 (1,)"),
                             ({"lengths": runs["lengths"][:-1]}, "found shape int64 (2,)"),
                             ({"starts": runs["starts"][::-1].copy()}, bad_runs),
                             ({"lengths": runs["lengths"] * 0}, bad_runs),
                             ({"shape": np.array([1, 1], np.int64)}, bad_runs),
                             ({"values": runs["values"] * 0}, bad_runs)):
        write_npz(path, {**runs, **changed})
        _refused(read_components, path, problem)
