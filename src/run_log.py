"""What a person sees of a run: its log file, and progress bars only where someone watches.

`recorded_run(cfg, script)` adds a log file below io_root (paths.log_file) to logging while a
script runs: the same lines as the console, after a header with the resolved configuration and
the versions of Python, torch, numpy and the project's git commit.
"""
import contextlib
import dataclasses
import json
import logging
import os
import platform
import subprocess
import time

import numpy as np
from tqdm import tqdm

from src.errors import LOG_DATE_FORMAT, LOG_FORMAT, MetaOodError
from src.settings import REPOSITORY

logger = logging.getLogger(__name__)


def git_commit() -> str:
    """The project's commit, with '+changes' when the working tree differs from it ('unknown' outside git)."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=REPOSITORY, capture_output=True, text=True, timeout=10)
    try:
        head, status = git("rev-parse", "HEAD"), git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if head.returncode != 0:
        return "unknown"
    return head.stdout.strip() + ("+changes" if status.stdout.strip() else "")


def versions() -> dict:
    import torch  # here: the library modules that only want progress bars need no torch
    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "commit": git_commit()}


def _process_suffix() -> str:
    """Under torchrun every process logs to its own file: `_rank<r>` for the processes beyond the first."""
    rank = int(os.environ.get("RANK", "0"))
    return f"_rank{rank}" if rank else ""


@contextlib.contextmanager
def recorded_run(cfg, script: str):
    """Logs to the run's own log file inside the block; yields its path."""
    from src import paths
    stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}" + _process_suffix()
    path = paths.log_file(cfg, script, stamp)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        handler = logging.FileHandler(path, encoding="utf-8")
    except OSError as err:
        raise MetaOodError(f"cannot write the log file {path} below --io_root: {err.strerror}") from err
    handler.setFormatter(logging.Formatter(LOG_FORMAT, datefmt=LOG_DATE_FORMAT))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        logger.info("%s run, log file %s", script, path)
        logger.info("versions: %s", json.dumps(versions()))
        logger.info("configuration: %s", json.dumps(dataclasses.asdict(cfg), sort_keys=True))
        yield path
    except MetaOodError as err:  # the one-line error the script prints to the console goes here too
        handler.handle(logger.makeRecord(logger.name, logging.ERROR, __file__, 0, "%s", (err,), None))
        raise
    finally:
        root.removeHandler(handler)
        handler.close()


def progress(iterable=None, **kwargs):
    """A tqdm progress bar on a terminal; none when stderr is not one (log files and CI stay clean)."""
    return tqdm(iterable, **{"disable": None, "dynamic_ncols": True, **kwargs})
