"""Atomic file output: write to a temporary file beside the target, then rename.

An interrupted run therefore never leaves a half-written file under the final
name, and "the file exists" can safely mean "this piece of work is done".
"""
import contextlib
import csv
import json
import os
import pickle
import uuid


def _new_temporary_file(folder: str, suffix: str) -> str:
    """The path of a new empty file in `folder` (O_EXCL: never an existing one).

    Mode 0666 lets the kernel apply the umask, as for open(). mkstemp's 0600 would need a chmod by
    the umask, which can only be read by setting it, for every thread of the process at once.
    """
    path = os.path.join(folder, f".tmp-{uuid.uuid4().hex}{suffix}")
    os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    return path


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path; on success it replaces `path`, on error it is removed."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    suffix = os.path.splitext(path)[1]
    tmp = _new_temporary_file(folder, suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def write_pickle(path, obj):
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)


def read_pickle(path):
    with open(path, "rb") as f:
        return pickle.load(f)


def write_json(path, obj):
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def read_json(path):
    with open(path) as f:
        return json.load(f)


def write_csv(path, columns, rows):
    """`rows` (dicts keyed by `columns`) as a CSV file with a header line."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(rows)


def write_json_lines(path, records):
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.writelines(json.dumps(record) + "\n" for record in records)


def read_json_lines(path) -> list:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]
