"""Nothing runs from a file a user passes in: checkpoints, backbone files and caffe2 pickles whose
unpickling would run a command are refused with one error line, and the command never runs."""

import os
import pickle
import subprocess
import sys

import pytest
import torch

from support.paths import REPO_ROOT, TINY_CONFIG


pytestmark = pytest.mark.slow  # main.py in subprocesses


class RunsCommand:
    """Unpickling this object runs `touch <marker>`."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def write_torch_file(path, marker):
    torch.save({"model": {"encoder.conv1.weight": RunsCommand(marker)}}, path)


def write_caffe2_pickle(path, marker):
    with open(path, "wb") as handle:
        pickle.dump({"blobs": {"conv1_w": RunsCommand(marker)}}, handle)


def run_main(args, cwd):
    return subprocess.run([sys.executable, str(REPO_ROOT / "main.py"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("writer, how", [
    (write_torch_file, "wts"), (write_torch_file, "backbone"), (write_caffe2_pickle, "backbone"),
    (write_caffe2_pickle, "wts"),
])
def test_file_whose_unpickling_runs_a_command_is_refused(tmp_path, mini_davis, writer, how):
    marker = tmp_path / "command_ran"
    evil = tmp_path / "evil.pth"
    writer(evil, marker)
    args = ["-c", str(TINY_CONFIG), f"data.train_root={mini_davis}", f"data.test_root={mini_davis}"]
    if how == "wts":
        args += ["--task", "infer", "--wts", str(evil)]
    else:
        args += ["--task", "train", f"model.backbone_weights={evil}"]
    result = run_main(args, tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("error:") and "evil.pth" in last_line
    assert not marker.exists()


def test_unrestricted_load_would_run_the_command(tmp_path):
    """Guards the test above: the files really are dangerous when loaded without restrictions."""
    marker = tmp_path / "command_ran"
    write_caffe2_pickle(tmp_path / "evil.pkl", marker)
    with open(tmp_path / "evil.pkl", "rb") as handle:
        pickle.load(handle)
    assert marker.exists()
