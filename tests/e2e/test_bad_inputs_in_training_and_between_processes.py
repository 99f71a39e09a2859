"""Rows of the bad-input table (docs/troubleshooting.md) that train or involve another process: a
corrupt frame met by a DataLoader worker, a full disk while a checkpoint is written, a NaN loss, a
second process writing into the same folder, and the lock of a killed process."""

import contextlib
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

import main
from loss import LOSSES
from utils.files import lock_folder, unlock_folder

from support.bad_inputs import (fails_in_process, fails_in_subprocess, no_space_left, small_davis, tiny_run_args,
                                 train_tiny_weights)
from support.paths import REPO_ROOT


@pytest.fixture
def data_root(tmp_path):
    return small_davis(tmp_path)


@pytest.fixture
def args(data_root):
    return tiny_run_args(data_root)


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    """A checkpoint of the tiny model, trained for one iteration."""
    return train_tiny_weights(tmp_path_factory.mktemp("weights"))


@pytest.mark.slow
def test_corrupt_jpeg_read_by_a_dataloader_worker_is_named(tmp_path, args, data_root):
    """The last frame (the index checks the first one): the worker meets it while training."""
    corrupt = data_root / "JPEGImages/480p/bear/00007.jpg"
    corrupt.write_bytes(corrupt.read_bytes()[:3] + b"\x00" * 200)
    line = fails_in_subprocess(args + ["--task", "train", "loader.num_workers=1"], tmp_path)
    assert line.startswith(f"error: cannot read image {corrupt}")


@pytest.mark.slow
def test_disk_full_while_writing_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch, capsys, args):
    monkeypatch.chdir(tmp_path)
    save, calls = torch.save, {"count": 0}

    def save_until_full(payload, target, *save_args, **save_kwargs):
        calls["count"] += 1
        if calls["count"] == 2:
            target.write(b"PK half a checkpoint")
            no_space_left()
        return save(payload, target, *save_args, **save_kwargs)

    monkeypatch.setattr(torch, "save", save_until_full)
    line = fails_in_process(args + ["--task", "train", "train.epochs=2", "train.checkpoint_every=1"], capsys)
    monkeypatch.setattr(torch, "save", save)
    assert line == "error: cannot write saved_models/tiny/last.pth: No space left on device"
    assert torch.load(tmp_path / "saved_models/tiny/last.pth", weights_only=True)["iteration"] == 1
    assert sorted(path.name for path in (tmp_path / "saved_models/tiny").glob(".last.pth*")) == []


@pytest.mark.slow
def test_nan_loss_stops_at_its_iteration_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, capsys, args):
    monkeypatch.chdir(tmp_path)
    cross_entropy, calls = LOSSES["ce"], {"count": 0}

    def loss_nan_at_step_3(logits, masks):
        calls["count"] += 1
        loss = cross_entropy(logits, masks)
        return loss * float("nan") if calls["count"] == 3 else loss

    monkeypatch.setitem(LOSSES, "ce", loss_nan_at_step_3)
    line = fails_in_process(args + ["--task", "train", "train.epochs=3", "train.checkpoint_every=1"], capsys)
    assert "training diverged: the loss is nan at iteration 3" in line
    checkpoint = torch.load(tmp_path / "saved_models/tiny/last.pth", weights_only=True)
    assert checkpoint["iteration"] == 2
    assert all(torch.isfinite(value).all() for value in checkpoint["model"].values() if value.is_floating_point())


@pytest.mark.slow
@pytest.mark.parametrize("task, folder", [("train", "saved_models/tiny"), ("infer", "results/tiny")])
def test_second_process_writing_into_the_same_output_folder_is_refused(tmp_path, args, tiny_weights, task, folder):
    """While one process writes into the output folder (here: the test holds its lock), main.py
    refuses to write there and names the folder and the process; once free, the run proceeds and
    frees the folder when it ends."""
    arguments = args + ["--task", task, "--wts", str(tiny_weights)]
    holder = lock_folder(tmp_path / folder, "output")
    try:
        line = fails_in_subprocess(arguments, tmp_path)
    finally:
        unlock_folder(holder)
    assert line.startswith(f"error: {folder} is in use by process {os.getpid()} on ")
    assert "choose another run name" in line
    assert sorted(path.name for path in (tmp_path / folder).iterdir()) == [".lock"]
    with contextlib.chdir(tmp_path):
        assert main.main(arguments) == 0
    assert (tmp_path / folder / ".lock").read_text() == ""  # released when the run ended


def test_a_killed_processs_lock_is_free_though_its_forked_child_lives_and_is_taken_over_as_stale(tmp_path, caplog):
    """The output-folder lock belongs to the process that took it: a forked child (a DataLoader
    worker) that outlives it holds nothing, so the next run starts at once; the lock file still
    names the killed process, which the next run reports as stale in one log line."""
    script = textwrap.dedent(f"""
        import os, signal, sys, time
        sys.path.insert(0, {str(REPO_ROOT)!r})
        from utils.files import lock_folder
        handle = lock_folder({str(tmp_path / "run")!r}, "run")
        child = os.fork()
        if child == 0:
            time.sleep(120)
            os._exit(0)
        print(child, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    child = int(process.stdout.readline())
    try:
        assert process.wait(timeout=60) == -signal.SIGKILL
        os.kill(child, 0)  # the child lives on, with the lock file open
        caplog.set_level("WARNING")
        handle = lock_folder(tmp_path / "run", "run")
    finally:
        os.kill(child, signal.SIGKILL)
    (message,) = [record.getMessage() for record in caplog.records]
    assert message.startswith(f"{tmp_path / 'run'}: taking over the stale lock of process {process.pid} on ")
    assert message.endswith(", which ended without releasing it")
    assert (tmp_path / "run/.lock").read_text().startswith(f"process {os.getpid()} on ")
    unlock_folder(handle)
