"""Pool workers end with the process that started them, also when it is killed (SIGKILL: none of
its clean-up runs). The segment search's workers: tests/test_pipeline.py, on the real script."""
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.process_testing import group_processes, kill_group, remaining_after

REPO = Path(__file__).resolve().parents[1]

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
        workers = [pid for pid, command in group_processes(process.pid).items() if "loky" in command and
                   "popen_loky" in command]
        assert len(workers) == 2
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        assert remaining_after(process.pid, 5) == {}
    finally:
        kill_group(process.pid)
