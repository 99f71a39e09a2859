"""Runs of the tiny model in this process: an untrained checkpoint of it, an infer run, and an
infer run with a package missing."""

import sys
from pathlib import Path

import main
from checkpoints.training import save_checkpoint
from network import build_model
from utils.config import load_config, to_dict

from support.data_trees import write_mini_davis
from support.paths import TINY_CONFIG


def save_untrained_checkpoint(path: Path) -> Path:
    cfg = load_config(TINY_CONFIG)
    save_checkpoint(path, model_state=build_model(cfg.model).state_dict(), epoch=0, iteration=0, config=to_dict(cfg))
    return path


def infer(weights, root, *overrides):
    assert main.main(["-c", str(TINY_CONFIG), "--task", "infer", "--wts", str(weights), f"data.test_root={root}",
                      *overrides]) == 0


def infer_without(package: str, override: str, tmp_path: Path, monkeypatch, capsys) -> tuple[int, list[str]]:
    """`--task infer OVERRIDE` of an untrained tiny model on a one-sequence DAVIS tree, in
    `tmp_path`, with `import PACKAGE` raising ImportError: (exit status, lines on stderr)."""
    weights = save_untrained_checkpoint(tmp_path / "tiny.pth")
    root = write_mini_davis(tmp_path / "DAVIS", names=("bear",), num_frames=4)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, package, None)
    status = main.main(["-c", str(TINY_CONFIG), "--task", "infer", "--wts", str(weights), f"data.test_root={root}",
                        override])
    return status, capsys.readouterr().err.strip().splitlines()
