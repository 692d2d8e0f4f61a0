"""Atomic outputs: a failed write leaves neither a partial target nor a temporary file; what a
killed run left is removed by the next; .npz and JSON files are read back without unpickling."""
import hashlib
import json
import os
import pickle
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from src.atomic import (OutputFileError, atomic_path, read_json, read_npz, remove_stale_temporaries, write_json,
                        write_npz)
from src.errors import MetaOodError

REPO = Path(__file__).resolve().parents[1]


def test_round_trip_and_no_leftovers(tmp_path):
    target = tmp_path / "sub" / "x.npz"
    arrays = {"z": np.arange(3), "a": np.ones((2, 2), np.float32)}
    write_npz(target, arrays)
    got = read_npz(target, "two arrays", "this test")
    assert list(got) == ["z", "a"]  # the order of writing, not sorted
    for name in arrays:
        assert got[name].dtype == arrays[name].dtype
        np.testing.assert_array_equal(got[name], arrays[name])
    assert os.listdir(tmp_path / "sub") == ["x.npz"]


def test_the_same_arrays_give_the_same_bytes(tmp_path):
    """np.savez stamps each entry with the time of writing; a re-run must reproduce the file."""
    arrays = {"m": np.arange(12, dtype=np.int32).reshape(3, 4)}
    for compressed in (False, True):
        write_npz(tmp_path / f"one_{compressed}.npz", arrays, compressed)
    time.sleep(2.1)  # zip times have a resolution of 2 s
    for compressed in (False, True):
        write_npz(tmp_path / f"two_{compressed}.npz", arrays, compressed)
        one, two = ((tmp_path / f"{n}_{compressed}.npz").read_bytes() for n in ("one", "two"))
        assert hashlib.sha256(one).digest() == hashlib.sha256(two).digest()
        np.testing.assert_array_equal(np.load(tmp_path / f"one_{compressed}.npz", allow_pickle=False)["m"],
                                      arrays["m"])
    assert (tmp_path / "one_True.npz").read_bytes() != (tmp_path / "one_False.npz").read_bytes()


def test_object_arrays_are_not_written(tmp_path):
    with pytest.raises(ValueError, match="pickle"):
        write_npz(tmp_path / "o.npz", {"o": np.array([{"a": 1}], dtype=object)})
    assert os.listdir(tmp_path) == []


def _pickled(path):
    path.write_bytes(pickle.dumps({"a": np.arange(3)}, protocol=pickle.HIGHEST_PROTOCOL))


@pytest.mark.parametrize("damage, problem", [
    ("truncated", "not a readable .npz file (BadZipFile: "),
    ("garbage", "not an .npz archive (it starts with b'\\x00\\x01 n')"),
    ("pickle", "a pickle, which is never loaded (loading one can run any code)"),
    ("npy", "not an .npz archive (it starts with b'\\x93NUM')"),
    ("object array", "not a readable .npz file (ValueError: Object arrays cannot be loaded when allow_pickle=False)"),
])
def test_an_unreadable_npz_is_a_one_line_error_naming_the_file(tmp_path, damage, problem):
    path = tmp_path / "x.npz"
    write_npz(path, {"a": np.arange(1000)})
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:300])
    elif damage == "garbage":
        path.write_bytes(b"\x00\x01 not an archive" * 10)
    elif damage == "pickle":
        _pickled(path)
    elif damage == "npy":
        np.save(open(path, "wb"), np.arange(3))
    else:
        np.savez(open(path, "wb"), a=np.array([None], dtype=object))
    with pytest.raises(OutputFileError) as info:
        read_npz(path, "some arrays", "make_x.py")
    message = str(info.value)
    assert isinstance(info.value, MetaOodError) and "\n" not in message
    assert message.startswith(f"{path}: {problem}")
    assert message.endswith("; expected some arrays. Delete it and run make_x.py again")


def test_a_pickle_is_never_loaded(tmp_path, monkeypatch):
    path = tmp_path / "x.npz"
    _pickled(path)
    monkeypatch.setattr(pickle, "load", lambda *a, **k: pytest.fail("pickle.load called"))
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("pickle.loads called"))
    with pytest.raises(OutputFileError, match="a pickle, which is never loaded"):
        read_npz(path, "arrays", "x")


@pytest.mark.parametrize("content, problem", [
    ('{"a": 1, "trunc', "not valid JSON"),
    ("[1, 2]", "a JSON list"),
    ('{"a": 1}', "no key b, c"),
])
def test_a_bad_json_file_is_a_one_line_error_naming_the_file(tmp_path, content, problem):
    path = tmp_path / "r.json"
    path.write_text(content)
    with pytest.raises(OutputFileError) as info:
        read_json(path, "a result", "make_r.py -x", keys=("a", "b", "c"))
    assert str(info.value).startswith(f"{path}: {problem}")
    assert str(info.value).endswith("; expected a result (a JSON object). Delete it and run make_r.py -x again")
    assert "\n" not in str(info.value)


def test_a_pickle_in_place_of_json_is_refused(tmp_path):
    path = tmp_path / "r.json"
    _pickled(path)
    with pytest.raises(OutputFileError, match="r.json: not valid JSON"):
        read_json(path, "a result", "x")


def test_json_round_trip(tmp_path):
    write_json(tmp_path / "r.json", {"a": [1, 2], "b": None})
    assert read_json(tmp_path / "r.json", "a result", "x", keys=("a",)) == {"a": [1, 2], "b": None}


def test_interrupted_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "r.json"
    write_json(target, {"v": 1})
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp, open(tmp, "w") as f:
            f.write('{"v": 2, "trunc')
            raise KeyboardInterrupt
    assert target.read_text() == '{\n  "v": 1\n}\n'
    assert os.listdir(tmp_path) == ["r.json"]


def test_new_file_is_absent_after_a_failure(tmp_path):
    with pytest.raises(ValueError):
        with atomic_path(tmp_path / "new.png"):
            raise ValueError("boom")
    assert os.listdir(tmp_path) == []


def killed_while_writing(path):
    """Writes `path` atomically in another process that dies halfway (os._exit: no clean-up runs,
    as after a SIGKILL); returns the temporary file it leaves."""
    code = ("import os, sys\nfrom src.atomic import atomic_path\nwith atomic_path(sys.argv[1]) as tmp:\n"
            "    print(tmp, flush=True)\n    os._exit(9)")
    done = subprocess.run([sys.executable, "-c", code, str(path)], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 9 and os.path.exists(done.stdout.strip()), done.stderr
    return done.stdout.strip()


def test_stale_temporaries_and_nothing_else_are_removed(tmp_path):
    stale = killed_while_writing(tmp_path / "result.json")
    killed_while_writing(tmp_path / "sub" / "map.npz")
    assert os.path.basename(stale).startswith(".tmp-") and stale.endswith(".json")
    others = [".tmp-notes.txt", "x.tmp-" + "0" * 32, ".tmp-" + "0" * 31 + ".json", "result.json"]
    for name in others:
        (tmp_path / name).write_text("not a temporary file of atomic_path")
    (tmp_path / (".tmp-" + "a" * 32)).mkdir()
    assert remove_stale_temporaries(tmp_path) == [stale]
    assert sorted(os.listdir(tmp_path)) == sorted(others + ["sub", ".tmp-" + "a" * 32])
    assert len(os.listdir(tmp_path / "sub")) == 1  # a subfolder is another stage's
    assert remove_stale_temporaries(tmp_path / "missing") == []


def test_permissions_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        write_json(tmp_path / "p.json", {})
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "p.json").st_mode) == 0o644


def test_writing_leaves_the_process_umask_alone(tmp_path, monkeypatch):
    """Other threads create files meanwhile: setting the umask, even briefly, would change theirs."""
    def no_umask(mask):
        raise AssertionError("os.umask called")
    monkeypatch.setattr(os, "umask", no_umask)
    write_json(tmp_path / "p.json", {})
    assert os.listdir(tmp_path) == ["p.json"]
