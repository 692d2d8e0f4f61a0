"""Atomic file output: write to a temporary file beside the target, then rename.

An interrupted run therefore never leaves a half-written file under the final
name, and "the file exists" can safely mean "this piece of work is done". A run
killed outright (SIGKILL, power loss) can leave its temporary file `.tmp-<hex><suffix>`
behind: each stage removes those of the folders it writes when it starts
(remove_stale_temporaries).

Nothing written here is a pickle or read back by unpickling: arrays are .npz files read with
allow_pickle=False, other data JSON. A file whose content is not what was expected raises
OutputFileError, whose message names the file and the command that writes it again.
"""
import contextlib
import csv
import io
import json
import logging
import os
import re
import uuid
import zipfile

import numpy as np

from src.errors import MetaOodError, OutputError

logger = logging.getLogger(__name__)

_TEMPORARY = re.compile(r"\.tmp-[0-9a-f]{32}")  # the names _new_temporary_file gives
# A zip entry carries a modification time; a fixed one makes equal arrays give equal bytes.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_ZIP_LEVEL = 1
_ZIP_STARTS = (b"PK\x03\x04", b"PK\x05\x06")  # an archive with entries, an empty one
_PICKLE_START = b"\x80"  # pickle protocol 2 and later


class OutputFileError(MetaOodError, ValueError):
    """A file an earlier run wrote that cannot be used: truncated, corrupt or of another kind."""


def unusable(path, problem, expected, rerun) -> OutputFileError:
    """The error for the file at `path`: what is wrong with it, what it should hold, what writes it."""
    return OutputFileError(f"{path}: {problem}; expected {expected}. Delete it and run {rerun} again")


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


def remove_stale_temporaries(folder) -> list:
    """Deletes the temporary files of atomic_path that a killed run left in `folder` (not in its
    subfolders); returns their paths. Nothing else is touched, and a missing folder is no error.

    Each stage calls it on the folders it writes, when it starts. Two runs writing to the same
    folder at the same time are not supported (they never were): one would delete the temporary
    files that the other is still writing.
    """
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):  # a file on the path: the stage's first write names it
        return []
    stale = [e.path for e in entries if _TEMPORARY.match(e.name) and e.is_file(follow_symlinks=False)]
    for path in stale:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
    if stale:
        logger.info("removed %d temporary file(s) of an interrupted run from %s", len(stale), folder)
    return stale


def write_npz(path, arrays, compressed=False):
    """Writes `arrays` (name -> array, in this order) as an .npz file that np.load reads.

    As np.savez(_compressed), but object arrays are refused (they would be pickled), the
    same arrays always give the same bytes, and compression is deflate's fastest level: the arrays
    compressed here are label and components data, mostly runs of one value, which level 1 deflates
    3x faster than the default 6, to files a few kB larger.
    """
    compression = zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", compression) as archive:
        for name, array in arrays.items():
            entry = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_TIME)
            entry.compress_type = compression
            npy = io.BytesIO()
            np.lib.format.write_array(npy, np.asarray(array), allow_pickle=False)
            archive.writestr(entry, npy.getbuffer(), compresslevel=_ZIP_LEVEL)


def read_npz(path, expected, rerun) -> dict:
    """The arrays of the .npz file at `path` by name, in their stored order; never unpickles.

    A file that is no readable .npz raises OutputFileError; `expected` (what the file should
    hold) and `rerun` (the command that writes it) are for its message.
    """
    try:
        problem = _not_npz(path)
        if problem is None:
            with np.load(path, allow_pickle=False) as archive:
                return {name: archive[name] for name in archive.files}
    except Exception as err:  # zipfile, zlib, struct and numpy's format checks raise many kinds
        raise unusable(path, f"not a readable .npz file ({type(err).__name__}: {err})", expected, rerun) from err
    raise unusable(path, problem, expected, rerun)


def _not_npz(path):
    """Why the file at `path` is no .npz archive, judging by its first bytes; None if it may be one.

    (np.load's own message for a pickle suggests loading it unsafely.)
    """
    with open(path, "rb") as f:
        start = f.read(4)
    if start.startswith(_PICKLE_START):
        return "a pickle, which is never loaded (loading one can run any code)"
    if start not in _ZIP_STARTS:
        return f"not an .npz archive (it starts with {start!r})"
    return None


def write_json(path, obj):
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def read_json(path, what, rerun, keys=()) -> dict:
    """The JSON object at `path`, which must hold `keys`; else OutputFileError (`what` the file
    is and `rerun` the command that writes it, for its message)."""
    expected = f"{what} (a JSON object)"
    try:
        with open(path, encoding="utf-8") as f:
            content = json.load(f)
    except ValueError as err:  # JSONDecodeError, UnicodeDecodeError
        raise unusable(path, f"not valid JSON ({err})", expected, rerun) from err
    if not isinstance(content, dict):
        raise unusable(path, f"a JSON {type(content).__name__}", expected, rerun)
    missing = [k for k in keys if k not in content]
    if missing:
        raise unusable(path, f"no key {', '.join(missing)}", expected, rerun)
    return content


def write_csv(path, columns, rows):
    """`rows` (dicts keyed by `columns`) as a CSV file with a header line."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(rows)


def write_json_lines(path, records):
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.writelines(json.dumps(record) + "\n" for record in records)


def read_json_lines(path, what, rerun) -> list:
    """The JSON objects, one a line, at `path`; else OutputFileError (as read_json)."""
    try:
        with open(path, encoding="utf-8") as f:
            records = [json.loads(line) for line in f if line.strip()]
    except ValueError as err:
        raise unusable(path, f"not JSON lines ({err})", f"{what} (a JSON object per line)", rerun) from err
    if not all(isinstance(record, dict) for record in records):
        raise unusable(path, "a line that is not a JSON object", f"{what} (a JSON object per line)", rerun)
    return records
