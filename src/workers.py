"""Worker processes that end with the process that started them.

The workers of a process pool wait on queues that they hold open themselves, so a script killed
outright (SIGKILL: none of its clean-up runs) left them alive: those of a ProcessPoolExecutor
forever, joblib's (loky) until their idle timeout. prctl(PR_SET_PDEATHSIG) would not help the
segment search: a fork server starts its workers, so their parent is the fork server, and it
lives on as long as some worker holds its "alive" pipe. Each worker therefore watches the
starting process itself, through a pidfd (Linux >= 5.3), which turns readable when that
process ends. The watch starts in the pool's initializer, which runs once the worker has
imported the script's modules (seconds, for a script that imports torch): a worker killed
before that ends when it gets there.
"""
import os
import select
import threading


def ending_with_this_process() -> dict:
    """`initializer` and `initargs` of a pool (ProcessPoolExecutor, joblib.parallel_config with the
    loky backend) whose workers end as soon as the calling process does."""
    return {"initializer": exit_with, "initargs": (os.getpid(),)}


def exit_with(pid):
    """Pool initializer: a thread ends this process as soon as process `pid` ends."""
    if not hasattr(os, "pidfd_open"):  # not Linux: workers outlive a killed starter, as before
        return
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:  # it has ended already
        os._exit(1)
    threading.Thread(target=_exit_when_readable, args=(pidfd,), name=f"exit with {pid}", daemon=True).start()


def _exit_when_readable(pidfd):
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    poller.poll()
    os._exit(1)  # at once: the starter is gone, so nobody waits for what this worker computes
