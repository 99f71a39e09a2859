"""Runs of main.py that must fail as a user error: exit status 2, no traceback, one last line
`error: ...` naming the culprit; and the small DAVIS tree and tiny checkpoint they start from."""

import contextlib
import errno
import os
import subprocess
import sys
from pathlib import Path

import main

from support.data_trees import write_mini_davis
from support.paths import REPO_ROOT, TINY_CONFIG

NUM_FRAMES = 8  # = the tiny config's clip length: every training clip reads the last frame


def small_davis(folder: Path) -> Path:
    return write_mini_davis(folder / "DAVIS", num_frames=NUM_FRAMES, height=32, width=64)


def tiny_run_args(data_root: Path) -> list[str]:
    return ["-c", str(TINY_CONFIG), f"data.train_root={data_root}", f"data.test_root={data_root}",
            "train.validate_every=0"]


def train_tiny_weights(folder: Path) -> Path:
    """A checkpoint of the tiny model, trained for one iteration in `folder`."""
    root = small_davis(folder)
    with contextlib.chdir(folder):
        assert main.main(["-c", str(TINY_CONFIG), "--task", "train", f"data.train_root={root}",
                          f"data.test_root={root}", "train.validate_every=0"]) == 0
    return folder / "saved_models/tiny/last.pth"


def last_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert lines and lines[-1].startswith("error: "), stderr[-2000:]
    return lines[-1]


def fails_in_process(arguments, capsys) -> str:
    """Run main.main in this process; it must return 2 (a user error) without raising."""
    capsys.readouterr()
    code = main.main(arguments)
    stderr = capsys.readouterr().err
    assert code == 2, stderr[-2000:]
    return last_error_line(stderr)


def fails_in_subprocess(arguments, cwd) -> str:
    result = subprocess.run([sys.executable, str(REPO_ROOT / "main.py"), *arguments], cwd=cwd,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    return last_error_line(result.stderr)


def no_space_left(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
