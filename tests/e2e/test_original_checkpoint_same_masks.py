"""The original 3DC-Seg checkpoint format through `main.py --task infer`, with the paper config:
same masks as the same weights in our format, and the original's window schedule."""

import numpy as np
import pytest
import torch
from PIL import Image

import main
from checkpoints.convert import export_original
from checkpoints.training import save_checkpoint
from network import build_model
from utils.config import load_config

from support.paths import REPO_ROOT


pytestmark = pytest.mark.slow  # full-size key tables and original-format checkpoints

PAPER_CONFIG = REPO_ROOT / "run_configs" / "bmvc_final.yaml"
SMALL = ["device=cpu", "model.depths=[1,1,1,1]", "model.width=8", "model.decoder_width=16",
         "input.test_size=[64]", "data.test=synthetic", "data.synthetic.num_train=1",
         "data.synthetic.num_val=2", "data.synthetic.num_frames=11"]


def read_masks(folder):
    return {path.relative_to(folder): np.array(Image.open(path)) for path in sorted(folder.rglob("*.png"))}


@pytest.mark.parametrize("multi_gpu", [False, True])
def test_original_checkpoint_gives_the_same_masks_as_our_checkpoint(tmp_path, monkeypatch, caplog, multi_gpu):
    monkeypatch.chdir(tmp_path)
    overrides = SMALL + [f"data.test_root={tmp_path / 'synthetic'}"]
    torch.manual_seed(0)
    model = build_model(load_config(PAPER_CONFIG, overrides).model)
    for parameter in model.decoders[0].pred2.parameters():  # a visible mix of both classes
        parameter.data.normal_(0, 0.5)
    state = model.state_dict()
    original = export_original(state, epoch=3, iteration=40)
    if multi_gpu:
        original["model"] = {f"module.{key}": value for key, value in original["model"].items()}
    torch.save(original, tmp_path / "original.pth")
    save_checkpoint(tmp_path / "ours.pth", model_state=state, epoch=3, iteration=40, config={})

    caplog.set_level("INFO")
    assert main.main(["-c", str(PAPER_CONFIG), "--task", "infer", "--wts", "original.pth",
                      "name=from_original", *overrides]) == 0
    assert "original 3DC-Seg checkpoint" in caplog.text
    assert ("module." in caplog.text) == multi_gpu
    assert main.main(["-c", str(PAPER_CONFIG), "--task", "infer", "--wts", "ours.pth",
                      "name=from_ours", *overrides]) == 0

    from_original = read_masks(tmp_path / "results/from_original")
    from_ours = read_masks(tmp_path / "results/from_ours")
    assert len(from_original) == 2 * 11 and from_original.keys() == from_ours.keys()
    assert all(np.array_equal(from_original[key], from_ours[key]) for key in from_ours)
    assert any(mask.any() for mask in from_ours.values()) and any((mask == 0).any() for mask in from_ours.values())


def test_paper_configs_use_the_original_end_of_sequence_windows():
    for name in ("bmvc_final", "bmvc_final_dense", "bmvc_fbms", "bmvc_visal"):
        cfg = load_config(REPO_ROOT / "run_configs" / f"{name}.yaml")
        assert cfg.inference.tail == "repeat_first" and cfg.inference.clip_overlap == 3
        assert cfg.model.bn_eps == 1e-5 and cfg.model.pixel_std == [1.0, 1.0, 1.0]
