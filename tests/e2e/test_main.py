"""main.py as a user runs it: train a tiny model for two iterations, infer from its checkpoint,
and get one clear line for each user error."""

import json
import subprocess
import sys

import pytest
import torch

import main

from support.masks import masks_in, mean_j
from support.paths import REPO_ROOT, TINY_CONFIG

pytestmark = pytest.mark.slow  # trains, and starts main.py in subprocesses


@pytest.fixture
def tiny_args(mini_davis):
    return ["-c", str(TINY_CONFIG), f"data.train_root={mini_davis}", f"data.test_root={mini_davis}",
            "data.clips_per_sequence=2"]


def test_train_then_infer_writes_checkpoint_masks_and_metrics(tmp_path, monkeypatch, tiny_args, mini_davis, caplog):
    monkeypatch.chdir(tmp_path)
    assert main.main(tiny_args + ["--task", "train"]) == 0
    checkpoint = torch.load(tmp_path / "saved_models/tiny/last.pth", weights_only=True)
    assert checkpoint["iteration"] == 2 and checkpoint["epoch"] == 0
    assert checkpoint["config"]["model"]["width"] == 8 and checkpoint["optimizer"]["state"]
    assert (tmp_path / "saved_models/tiny/config.yaml").is_file()
    assert list((tmp_path / "saved_models/tiny/tensorboard").glob("events.out.tfevents.*"))

    assert main.main(tiny_args + ["--task", "infer", "--wts", "saved_models/tiny/last.pth"]) == 0
    for sequence in ("bear", "cows"):
        assert len(list((tmp_path / "results/tiny" / sequence).glob("*.png"))) == 10
    metrics = json.loads((tmp_path / "results/tiny/metrics.json").read_text())
    assert "clips_per_sequence: 2" in (tmp_path / "results/tiny/config.yaml").read_text()
    assert set(metrics["sequences"]) == {"bear", "cows"} and metrics["num_frames"] == 20
    annotations = {sequence: masks_in(mini_davis / "Annotations_unsupervised/480p" / sequence)
                   for sequence in ("bear", "cows")}
    assert metrics["mean_J"] == pytest.approx(mean_j(tmp_path / "results/tiny", annotations))

    caplog.set_level("INFO")  # eval: the same scores, no files
    assert main.main(tiny_args + ["--task", "eval", "--wts", "saved_models/tiny/last.pth", "name=again"]) == 0
    assert f"J&F {metrics['score']:.4f}, mean J {metrics['mean_J']:.4f}" in caplog.text
    assert not (tmp_path / "results/again/metrics.json").exists()


def run_main(args, cwd):
    return subprocess.run([sys.executable, str(REPO_ROOT / "main.py"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("extra, expected", [
    (["--task", "infer"], "needs --wts"),
    (["--task", "infer", "--wts", "missing.pth"], "file not found: missing.pth"),
    (["--task", "infer", "--wts", "x.pth", "inference.clip_overlp=2"], "did you mean inference.clip_overlap"),
    (["--task", "train", "data.train_root=nowhere"], "data.train_root: folder not found"),
])
def test_user_errors_end_with_one_clear_line(tmp_path, tiny_args, extra, expected):
    (tmp_path / "x.pth").write_bytes(b"")
    result = run_main(tiny_args + extra, tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and expected in lines[0]


def test_non_checkpoint_weights_end_with_one_clear_line(tmp_path, tiny_args):
    (tmp_path / "notes.pth").write_text("not a checkpoint")
    result = run_main(tiny_args + ["--task", "infer", "--wts", "notes.pth"], tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: cannot read")


def test_backbone_weights_are_loaded_at_the_start_of_training(tmp_path, monkeypatch, tiny_args, caplog):
    from network import build_model
    from utils.config import load_config
    monkeypatch.chdir(tmp_path)
    encoder = build_model(load_config(TINY_CONFIG).model).encoder
    backbone = {key: torch.rand_like(value) + 0.5 if value.is_floating_point() else value
                for key, value in encoder.state_dict().items() if key not in ("mean", "std")}
    torch.save(backbone, tmp_path / "backbone.pth")
    caplog.set_level("INFO")
    args = tiny_args + ["--task", "train", "model.backbone_weights=backbone.pth", "model.bn_mode=frozen",
                        "solver.base_lr=0.0", "train.validate_every=0"]
    assert main.main(args) == 0
    assert "3dcseg format" in caplog.text
    trained = torch.load(tmp_path / "saved_models/tiny/last.pth", weights_only=True)["model"]
    for key, value in backbone.items():  # lr 0 and frozen BN: the encoder is the backbone file
        assert torch.equal(trained[f"encoder.{key}"], value), key


def test_diverged_training_stops_with_one_clear_line(tmp_path, tiny_args):
    result = run_main(tiny_args + ["--task", "train", "solver.base_lr=1e30"], tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "diverged" in result.stderr.strip().splitlines()[-1]
