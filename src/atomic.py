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

from src.errors import MetaOodError, OutputError


def _new_temporary_file(folder: str, suffix: str) -> str:
    """The path of a new empty file in `folder` (O_EXCL: never an existing one).

    Mode 0666 lets the kernel apply the umask, as for open(). mkstemp's 0600 would need a chmod by
    the umask, which can only be read by setting it, for every thread of the process at once.
    """
    path = os.path.join(folder, f".tmp-{uuid.uuid4().hex}{suffix}")
    os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    return path


def _os_error(err):
    """The OSError behind `err`: itself, or the one a library (h5py, torch) met writing to a Python
    file and wrapped in an error of its own; None for the project's errors and anything else."""
    while err is not None and not isinstance(err, (OSError, MetaOodError)):
        err = err.__cause__ or err.__context__
    return err if isinstance(err, OSError) else None


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path; on success it replaces `path`, on error it is removed.

    An OSError on the way (a read-only or full disk, a file where a folder belongs) becomes an
    OutputError that names `path`.
    """
    tmp = None
    try:
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        tmp = _new_temporary_file(folder, os.path.splitext(path)[1])
        yield tmp
        os.replace(tmp, path)
    except BaseException as err:
        if tmp is not None:
            with contextlib.suppress(OSError):  # on a broken disk a leftover is unavoidable
                os.remove(tmp)
        cause = _os_error(err)
        if cause is None:
            raise
        raise OutputError(f"cannot write {path}: {cause.strerror or cause}") from err


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
