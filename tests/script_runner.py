"""Runs the project's scripts many times without paying their imports each time.

`Scripts(folder, parallel).run(runs)` runs each `Run` (a script with its arguments, extra
environment variables, a file size limit) as a process of its own and returns what
subprocess.run would. Warm (the default): a runner process (this file as a program) that has
imported the scripts' libraries once (torch, sklearn, ...: seconds per start) forks a child per
run; the child runs the real script file as `__main__` (runpy) with the run's argv, environment
and file size limit, its stdout and stderr in files, and exits with the script's status, or
with a traceback and status 1 for an uncaught exception, as `python script.py` does. Cold
(cold=True, or META_OOD_COLD_SCRIPTS=1 in the environment): every run starts its own
interpreter, `python script.py ...`, to check that the warm runs see the same.
"""
import json
import os
import resource
import runpy
import signal
import subprocess
import sys
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[1]
CHILD_TIMEOUT_S = 600


def _exit_status(code) -> int:
    """The status `sys.exit(code)` gives a process."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _redirect(fd: int, path: str) -> None:
    target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(target, fd)
    os.close(target)


def _child(request) -> None:
    """Runs one script in this (forked) process; never returns."""
    status = 1
    try:
        signal.alarm(CHILD_TIMEOUT_S)  # a hanging script is killed, not waited for
        _redirect(1, request["stdout"])
        _redirect(2, request["stderr"])
        os.environ.update(request["env"])
        if request["file_size_kb"]:
            limit = request["file_size_kb"] * 1024
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        sys.argv = request["argv"]
        try:
            runpy.run_path(sys.argv[0], run_name="__main__")
            status = 0
        except SystemExit as exit_:
            status = _exit_status(exit_.code)
        except BaseException:  # noqa: B902 - as the interpreter reports an uncaught exception
            traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def run_batch(requests, parallel: int) -> list:
    """The exit status of each request, its scripts run `parallel` at a time."""
    statuses, running, waiting = [None] * len(requests), {}, list(enumerate(requests))
    while waiting or running:
        while waiting and len(running) < parallel:
            k, request = waiting.pop(0)
            pid = os.fork()
            if pid == 0:
                _child(request)
            running[pid] = k
        pid, status = os.wait()
        statuses[running.pop(pid)] = os.waitstatus_to_exitcode(status)
    return statuses


@dataclass(frozen=True)
class Run:
    argv: list                           # the script (relative to the repository) and its arguments
    env: dict = field(default_factory=dict)   # set in the script's environment
    file_size_kb: Optional[int] = None   # RLIMIT_FSIZE: a longer write fails with EFBIG, as on a full disk


class Scripts:
    """Runs batches of scripts, `parallel` at a time; close() ends the runner process."""

    def __init__(self, folder, parallel: int, cold: bool = False):
        self.folder, self.parallel, self.count = Path(folder), parallel, 0
        self.cold = cold or os.environ.get("META_OOD_COLD_SCRIPTS") == "1"
        self.runner = None if self.cold else subprocess.Popen(
            [sys.executable, __file__], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def run(self, runs) -> list:
        """A subprocess.CompletedProcess (text stdout and stderr) per Run."""
        return self._cold(runs) if self.cold else self._warm(runs)

    def close(self) -> None:
        if self.runner:
            self.runner.stdin.close()
            self.runner.wait(timeout=60)

    def _warm(self, runs) -> list:
        requests = []
        for run in runs:
            self.count += 1
            base = self.folder / f"run{self.count}"
            requests.append({"argv": [str(a) for a in run.argv], "env": run.env, "file_size_kb": run.file_size_kb,
                             "stdout": f"{base}.out", "stderr": f"{base}.err"})
        self.runner.stdin.write(json.dumps({"requests": requests, "parallel": self.parallel}) + "\n")
        self.runner.stdin.flush()
        statuses = json.loads(self.runner.stdout.readline())
        return [subprocess.CompletedProcess(r["argv"], status, Path(r["stdout"]).read_text(),
                                            Path(r["stderr"]).read_text())
                for r, status in zip(requests, statuses)]

    def _cold(self, runs) -> list:
        with ThreadPoolExecutor(self.parallel) as pool:
            return list(pool.map(_cold_run, runs))


def _cold_run(run: Run) -> subprocess.CompletedProcess:
    command = [sys.executable, *map(str, run.argv)]
    if run.file_size_kb:
        command = ["bash", "-c", f'ulimit -f {run.file_size_kb} && exec "$@"', "bash", *command]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S,
                          env={**os.environ, **run.env})


def main() -> None:
    os.chdir(REPO)
    sys.path.insert(0, str(REPO))
    # The scripts' libraries, imported once; each child imports nothing more of them.
    import evaluation, meta_classification, ood_training  # noqa: F401,E401
    import preparation.prepare_coco_segmentation  # noqa: F401
    for line in sys.stdin:
        batch = json.loads(line)
        print(json.dumps(run_batch(batch["requests"], batch["parallel"])), flush=True)


if __name__ == "__main__":
    main()
