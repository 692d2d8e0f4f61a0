"""Scripts under test killed with SIGKILL, and their processes, found through /proc by their
process group: a script started with `start_new_session=True` leads its own process group, and
every process it starts (fork servers, pool workers, resource trackers) stays in it.
"""
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def group_processes(pgid) -> dict:
    """pid -> command line of every live process in the process group `pgid` (zombies are dead)."""
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                # the command name, in parentheses, may hold spaces: the fields after it are fixed
                state, _, group = f.read().rsplit(")", 1)[1].split()[:3]
            with open(f"/proc/{name}/cmdline", "rb") as f:
                command = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except (FileNotFoundError, ProcessLookupError):  # ended meanwhile
            continue
        if int(group) == pgid and state not in "ZX":
            found[int(name)] = command
    return found


def remaining_after(pgid, seconds) -> dict:
    """group_processes(pgid) once it is empty, or when `seconds` have passed."""
    deadline = time.monotonic() + seconds
    while (alive := group_processes(pgid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


def kill_group(pgid):
    """After a test: SIGKILL whatever of the group it started is left (nothing, if it passed)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def killed(command, ready, gone_within):
    """Runs the script `command` (its path and arguments) and SIGKILLs its main process as soon as
    `ready(pid)` returns something true; returns that. Every process the script started must be
    gone `gone_within` seconds later."""
    process = subprocess.Popen([sys.executable, *command], cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not (seen := ready(process.pid)):
            assert process.poll() is None and time.monotonic() < deadline, f"{command[0]} ended before the kill"
            time.sleep(0.005)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        assert remaining_after(process.pid, gone_within) == {}
        return seen
    finally:
        kill_group(process.pid)
