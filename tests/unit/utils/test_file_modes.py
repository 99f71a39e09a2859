"""Written files have the mode that any new file of the process gets, 0o666 less the umask (0o644
under the usual 022, 0o600 under 077), and folders 0o777 less the umask: the atomic writes once
left every mask, report and checkpoint 0o600 whatever the umask (tempfile.mkstemp's mode)."""

import os
import stat
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

import main
from checkpoints.training import save_checkpoint
from inference_handlers.writers import overlay_video, write_json, write_mask
from network import build_model
from utils.config import load_config, to_dict
from utils.files import atomic_write_text

from support.data_trees import write_mini_davis
from support.paths import TINY_CONFIG


@pytest.fixture(params=[0o022, 0o077], ids=["umask022", "umask077"])
def umask(request):
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


def modes(paths) -> dict:
    return {str(path): stat.S_IMODE(path.stat().st_mode) for path in paths}


def test_each_atomic_writer_gives_the_umask_mode(tmp_path, umask):
    results, model_dir = tmp_path / "results/tiny", tmp_path / "saved_models/tiny"
    written = [write_mask(results, "bear", "00000", np.eye(16, dtype=np.uint8)),
               results / "metrics.json", results / "report.html", model_dir / "last.pth", results / "bear.mp4"]
    write_json(written[1], {"score": 0.5})
    atomic_write_text(written[2], "<!doctype html>\n")
    save_checkpoint(written[3], model_state={"weight": torch.zeros(3)}, epoch=0, iteration=1, config={})
    with overlay_video(written[4], Fraction(10)) as video:
        video.add(np.zeros((16, 16, 3), dtype=np.uint8), np.eye(16, dtype=np.uint8))
    assert modes(written) == {str(path): 0o666 & ~umask for path in written}
    folders = [results, results / "bear", model_dir]
    assert modes(folders) == {str(path): 0o777 & ~umask for path in folders}


@pytest.mark.slow
def test_every_file_of_an_infer_run_has_the_umask_mode(tmp_path, monkeypatch, umask):
    monkeypatch.chdir(tmp_path)
    root = write_mini_davis(tmp_path / "DAVIS", num_frames=8, height=32, width=64)
    cfg = load_config(TINY_CONFIG)
    save_checkpoint("tiny.pth", model_state=build_model(cfg.model).state_dict(), epoch=0, iteration=0,
                    config=to_dict(cfg))
    assert main.main(["-c", str(TINY_CONFIG), "--task", "infer", "--wts", "tiny.pth", f"data.test_root={root}",
                      "inference.overlay=true", "inference.save_probs=true"]) == 0
    entries = list(Path("results").rglob("*"))
    files = [path for path in entries if path.is_file()]
    assert {"results/tiny/report.html", "results/tiny/metrics.json", "results/tiny/config.yaml",
            "results/tiny/bear/00000.png", "results/tiny/probs/bear/00000.png",
            "results/tiny/overlays/bear.mp4"} <= {str(path) for path in files}
    assert modes(files) == {str(path): 0o666 & ~umask for path in files}
    folders = [Path("results"), *(path for path in entries if path.is_dir())]
    assert modes(folders) == {str(path): 0o777 & ~umask for path in folders}
