"""Atomic outputs: a failed write leaves neither a partial target nor a temporary file."""
import os
import stat

import pytest

from src.atomic import atomic_path, read_pickle, write_json, write_pickle


def test_round_trip_and_no_leftovers(tmp_path):
    target = tmp_path / "sub" / "x.p"
    write_pickle(target, {"a": [1, 2]})
    assert read_pickle(target) == {"a": [1, 2]}
    assert os.listdir(tmp_path / "sub") == ["x.p"]


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
