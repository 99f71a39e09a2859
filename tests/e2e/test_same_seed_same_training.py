"""Reproducible runs: the demo (shortened) trained twice with the same seed ends with identical
checkpoints, another seed does not; every run's log records the software versions and the commit."""

import contextlib
import platform
import shutil
import subprocess

import pytest
import torch
import torchvision

import main

from support.paths import REPO_ROOT

pytestmark = pytest.mark.slow  # trains the demo three times

DEMO = REPO_ROOT / "run_configs" / "demo.yaml"
SHORT_DEMO = ["data.synthetic.num_train=4", "data.synthetic.num_val=2", "data.synthetic.num_frames=8",
              "data.clips_per_sequence=1", "train.epochs=2", "train.batch_size=2", "train.validate_every=1"]


def train_demo(folder, *overrides) -> dict:
    """Train the shortened demo in `folder` (its own synthetic data); return last.pth."""
    folder.mkdir()
    with contextlib.chdir(folder):
        assert main.main(["-c", str(DEMO), "--task", "train", *SHORT_DEMO, *overrides]) == 0
    return torch.load(folder / "saved_models/demo/last.pth", weights_only=True)


def flat_tensors(state, prefix=""):
    """Every tensor of a nested checkpoint dict, keyed by its path."""
    if isinstance(state, torch.Tensor):
        return {prefix: state}
    if isinstance(state, dict):
        items = state.items()
    elif isinstance(state, (list, tuple)):
        items = enumerate(state)
    else:
        return {}
    tensors = {}
    for key, value in items:
        tensors.update(flat_tensors(value, f"{prefix}/{key}"))
    return tensors


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("reproducible")
    return base, train_demo(base / "first"), train_demo(base / "second"), train_demo(base / "seed1", "seed=1")


def test_same_seed_gives_identical_checkpoints_and_another_seed_does_not(runs):
    _, first, second, other_seed = runs
    tensors, again = flat_tensors(first), flat_tensors(second)
    assert tensors.keys() == again.keys() and len(tensors) > 100
    different = [key for key, value in tensors.items() if not torch.equal(value, again[key])]
    assert different == []
    assert first["iteration"] == second["iteration"] == 4
    assert not torch.equal(first["model"]["encoder.conv1.weight"], other_seed["model"]["encoder.conv1.weight"])


def test_every_log_records_the_versions_and_the_commit(runs):
    base = runs[0]
    folder = base / "first"
    with contextlib.chdir(folder):
        assert main.main(["-c", str(DEMO), "--task", "eval", "--wts", "saved_models/demo/last.pth", *SHORT_DEMO]) == 0
    expected = (f"versions: Python {platform.python_version()}, torch {torch.__version__}, "
                f"torchvision {torchvision.__version__}")
    if shutil.which("git") and (REPO_ROOT / ".git").exists():
        commit = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
        code = f"code: git commit {commit}"
    else:
        code = "code: no git commit"
    for log in (folder / "saved_models/demo/train.log", folder / "results/demo/eval.log"):
        line = next(line for line in log.read_text().splitlines() if "versions:" in line)
        assert expected in line and code in line
