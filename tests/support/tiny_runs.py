"""Runs of the tiny model in this process: an untrained checkpoint of it, and an infer run."""

from pathlib import Path

import main
from checkpoints.training import save_checkpoint
from network import build_model
from utils.config import load_config, to_dict

from support.paths import TINY_CONFIG


def save_untrained_checkpoint(path: Path) -> Path:
    cfg = load_config(TINY_CONFIG)
    save_checkpoint(path, model_state=build_model(cfg.model).state_dict(), epoch=0, iteration=0, config=to_dict(cfg))
    return path


def infer(weights, root, *overrides):
    assert main.main(["-c", str(TINY_CONFIG), "--task", "infer", "--wts", str(weights), f"data.test_root={root}",
                      *overrides]) == 0
