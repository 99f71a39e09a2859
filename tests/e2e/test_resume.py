"""Exact resume: a run stopped by SIGTERM, or killed by SIGKILL between two checkpoints, and
started again with the same command ends with the weights of a run that never stopped."""

import contextlib
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import main
from loss import LOSSES

from support.data_trees import write_mini_davis
from support.paths import REPO_ROOT, TINY_CONFIG
from support.training_state import ITERATIONS, assert_same_training_state

pytestmark = pytest.mark.slow  # trains the tiny model about ten times, one of them in a subprocess


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return write_mini_davis(tmp_path_factory.mktemp("data") / "DAVIS", num_frames=8, height=32, width=64)


@pytest.fixture(scope="module")
def run_args(data_root):
    return ["-c", str(TINY_CONFIG), "--task", "train", f"data.train_root={data_root}",
            f"data.test_root={data_root}", "data.clips_per_sequence=3", "train.epochs=2",
            "train.validate_every=0", "train.log_every=1"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, run_args):
    """The final checkpoint of a run that was never stopped."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    with contextlib.chdir(folder):
        assert main.main(run_args) == 0
    return torch.load(folder / "saved_models/tiny/last.pth", weights_only=True)


def test_sigterm_writes_last_pth_and_the_same_command_resumes_exactly(tmp_path, monkeypatch, caplog, run_args,
                                                                      uninterrupted):
    monkeypatch.chdir(tmp_path)
    calls, cross_entropy = {"count": 0}, LOSSES["ce"]

    def loss_then_sigterm(logits, masks):  # a cluster's SIGTERM arriving during step 3
        calls["count"] += 1
        if calls["count"] == ITERATIONS // 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return cross_entropy(logits, masks)

    monkeypatch.setitem(LOSSES, "ce", loss_then_sigterm)
    caplog.set_level("INFO")
    assert main.main(run_args) == 128 + signal.SIGTERM
    stopped = torch.load(tmp_path / "saved_models/tiny/last.pth", weights_only=True)
    assert stopped["iteration"] == ITERATIONS // 2 and not stopped["training"]["progress"]["finished"]
    assert "stopped by SIGTERM at epoch 1, iteration 3" in caplog.text
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is gone after train()

    caplog.clear()
    assert main.main(run_args) == 0
    assert "resuming from saved_models/tiny/last.pth: epoch 1, iteration 3" in caplog.text
    assert "epoch 2/2, iteration 4 (1/3 of the epoch)" in caplog.text
    assert_same_training_state(torch.load(tmp_path / "saved_models/tiny/last.pth", weights_only=True), uninterrupted)


# main.py in a process that SIGKILLs itself when it logs argv[1]: the kill lands at that moment
# exactly, whatever the machine's speed (a parent watching the log would race the next step)
KILLED_WHEN_LOGGED = """
import logging, os, signal, sys
message, arguments = sys.argv[1], sys.argv[2:]
make_record = logging.getLogRecordFactory()

def record(*args, **kwargs):
    made = make_record(*args, **kwargs)
    if message in made.getMessage():
        os.kill(os.getpid(), signal.SIGKILL)
    return made

logging.setLogRecordFactory(record)
import main
sys.exit(main.main(arguments))
"""


def test_sigkill_between_checkpoints_then_the_same_command_resumes_exactly(tmp_path, monkeypatch, caplog, run_args,
                                                                           uninterrupted):
    args = run_args + ["train.checkpoint_every=2"]
    result = subprocess.run([sys.executable, "-c", KILLED_WHEN_LOGGED,
                             "saved checkpoint saved_models/tiny/last.pth (epoch 0, iteration 2)", *args],
                            cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == -signal.SIGKILL, result.stderr[-3000:]
    killed = torch.load(tmp_path / "saved_models/tiny/last.pth", weights_only=True)
    assert killed["iteration"] == 2

    monkeypatch.chdir(tmp_path)
    caplog.set_level("INFO")
    assert main.main(args) == 0
    assert "resuming from saved_models/tiny/last.pth: epoch 1, iteration 2" in caplog.text
    assert_same_training_state(torch.load(tmp_path / "saved_models/tiny/last.pth", weights_only=True), uninterrupted)


def test_the_command_of_a_finished_run_trains_nothing_and_says_so(tmp_path, monkeypatch, caplog, run_args):
    monkeypatch.chdir(tmp_path)
    args = run_args + ["train.epochs=1"]
    assert main.main(args) == 0
    finished = (tmp_path / "saved_models/tiny/last.pth").read_bytes()
    caplog.clear()
    caplog.set_level("INFO")
    assert main.main(args) == 0
    assert "nothing to train: saved_models/tiny/last.pth had finished all 1 epochs (3 iterations)" in caplog.text
    assert "finished training" not in caplog.text
    assert (tmp_path / "saved_models/tiny/last.pth").read_bytes() == finished


def test_sigterm_to_the_whole_process_group_with_loader_workers_stops_cleanly(tmp_path, run_args):
    """A cluster's scheduler, `timeout` and Ctrl-C signal every process of the job, DataLoader
    workers included: the workers leave the stop to the main process, which writes last.pth."""
    command = [sys.executable, str(REPO_ROOT / "main.py"), *run_args, "loader.num_workers=1", "train.epochs=50"]
    with open(tmp_path / "train.out", "w") as out:
        process = subprocess.Popen(command, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    log = tmp_path / "saved_models/tiny/train.log"
    while "iteration 4 " not in (log.read_text() if log.is_file() else ""):  # training, a worker loading
        assert process.poll() is None, (tmp_path / "train.out").read_text()[-3000:]
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGTERM)
    assert process.wait(timeout=120) == 128 + signal.SIGTERM, (tmp_path / "train.out").read_text()[-3000:]
    output = (tmp_path / "train.out").read_text()
    assert "Traceback" not in output and "stopped by SIGTERM at epoch" in log.read_text()
    stopped = torch.load(tmp_path / "saved_models/tiny/last.pth", weights_only=True)
    assert not stopped["training"]["progress"]["finished"] and stopped["iteration"] >= 4
