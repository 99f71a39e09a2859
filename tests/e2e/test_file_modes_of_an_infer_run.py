"""Every file and folder an infer run writes (masks, probability maps, overlay video, report,
metrics, config) has the mode 0o666 (folders 0o777) less the umask."""

from pathlib import Path

import pytest

import main
from checkpoints.training import save_checkpoint
from network import build_model
from utils.config import load_config, to_dict

from support.data_trees import write_mini_davis
from support.file_modes import modes
from support.paths import TINY_CONFIG


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
