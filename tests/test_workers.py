"""Pool workers end with the process that started them, also when it is killed (SIGKILL: none of
its clean-up runs): the segment search's, started by a fork server, and the meta classifier's
(joblib's loky)."""
import os
import signal
import subprocess
import sys

from src import paths
from src.settings import parse_run_config
from tests.process_testing import REPO, group_processes, kill_group, killed, remaining_after
from tests.test_segment_search import EPOCH, write_probs_files

N_IMAGES = 300  # tiny ones: some 3 ms each for 2 workers, so the search lasts about a second


def test_the_segment_search_workers_end_with_a_killed_script(tmp_path):
    command = ["meta_classification.py", "-segment", "--segment_workers", "2", "-val", "Fishyscapes",
               "-epoch", str(EPOCH), "--io_root", str(tmp_path)]
    cfg = parse_run_config("meta_classification", command[1:])
    write_probs_files(cfg, n_images=N_IMAGES)
    metrics = os.path.dirname(paths.metrics_file(cfg, EPOCH, 0))
    record = os.path.basename(paths.identity_file(metrics))  # written before the workers start

    def written():
        return set(os.listdir(metrics)) - {record} if os.path.isdir(metrics) else set()

    def searching(pid):
        """The run's processes once a worker writes the first image's metrics."""
        return written() and group_processes(pid)
    running = killed(command, searching, gone_within=3)
    # the script, the fork server and its 2 workers (all with the fork server's command line)
    assert sum("multiprocessing.forkserver" in c for c in running.values()) == 3
    assert len(written()) < N_IMAGES


# The meta classifier's cross-validation over 2 joblib (loky) workers, which stay for the next
# call when it returns (loky reuses them), so the process is killed while they live.
META_CLASSIFIER = """
import time
import numpy as np
from src.meta_classifier import SegmentData, out_of_fold_probabilities
rng = np.random.default_rng(0)
data = SegmentData(rng.normal(size=(40, 3)), ["a", "b", "c"], np.arange(40) % 2, np.zeros(40, np.int64))
out_of_fold_probabilities(data, cv="kfold", folds=4, n_jobs=2)
print("fitted", flush=True)
time.sleep(120)
"""


def test_the_meta_classifiers_workers_end_with_a_killed_process():
    process = subprocess.Popen([sys.executable, "-c", META_CLASSIFIER], cwd=REPO, stdout=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        assert process.stdout.readline() == "fitted\n"
        workers = [pid for pid, command in group_processes(process.pid).items() if "popen_loky" in command]
        assert len(workers) == 2
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        assert remaining_after(process.pid, 3) == {}
    finally:
        kill_group(process.pid)
