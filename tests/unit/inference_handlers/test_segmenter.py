"""The Python Segmenter's set-up: the config stored in our checkpoint with overrides checked like
the command line's, a YAML config for an original checkpoint, the device chosen as for main.py,
and the weight file read once."""

import numpy as np
import pytest
import torch

from checkpoints.training import save_checkpoint
from inference_handlers.segmenter import Segmenter
from network import build_model
from utils.config import load_config, to_dict
from utils.device import select_device
from utils.errors import UserError

from support.paths import TINY_CONFIG
from support.weight_files import original_checkpoint


@pytest.fixture
def tiny_weights(tmp_path):
    cfg = load_config(TINY_CONFIG, ["name=stored", "inference.clip_overlap=3"])
    path = tmp_path / "tiny.pth"
    save_checkpoint(path, model_state=build_model(cfg.model).state_dict(), epoch=0, iteration=0, config=to_dict(cfg))
    return path


@pytest.fixture
def torch_loads(monkeypatch):
    """The paths torch.load reads from here on."""
    paths, load = [], torch.load

    def counting_load(path, *args, **kwargs):
        paths.append(path)
        return load(path, *args, **kwargs)

    monkeypatch.setattr(torch, "load", counting_load)
    return paths


def test_our_checkpoint_is_read_once_for_its_config_and_its_weights(tiny_weights, torch_loads):
    segmenter = Segmenter(tiny_weights)
    assert torch_loads == [tiny_weights]
    assert segmenter.config.name == "stored" and segmenter.config.inference.clip_overlap == 3


def test_overrides_change_the_stored_config(tiny_weights):
    segmenter = Segmenter(tiny_weights, overrides=["inference.clip_overlap=0", "inference.mask_names=original_index"])
    assert segmenter.config.name == "stored"  # the rest is the checkpoint's
    assert segmenter.config.inference.mask_names == "original_index"
    assert segmenter.engine.stride == 8  # clip_length 8, no overlap: windows every 8 frames


@pytest.mark.parametrize("override, message", [
    ("inference.clip_overlab=1", "unknown key 'inference.clip_overlab'; did you mean inference.clip_overlap"),
    ("inference.clip_overlap=yes", "'inference.clip_overlap': expected int, got True"),  # YAML 1.1: yes
    ("inference.clip_overlap=8", "0 <= clip_overlap < input.clip_length"),
])
def test_overrides_of_the_stored_config_are_checked_like_the_command_line(tiny_weights, override, message):
    with pytest.raises(UserError, match=message):
        Segmenter(tiny_weights, overrides=[override])


def test_an_original_checkpoint_takes_its_config_from_a_file_and_is_read_once(tmp_path, model_state, torch_loads):
    path = tmp_path / "bmvc_final.pth"
    torch.save(original_checkpoint(model_state), path)
    torch_loads.clear()
    with pytest.raises(UserError, match="stores no config .* pass config="):
        Segmenter(path)
    config = tmp_path / "original.yaml"
    config.write_text("device: cpu\nmodel: {depths: [1, 2, 1, 1], width: 8, decoder_width: 16}\n"
                      "input: {clip_length: 4, test_resize: unchanged}\ninference: {clip_overlap: 1}\n")
    torch_loads.clear()
    segmenter = Segmenter(path, config=config)
    assert torch_loads == [path]
    frames = np.random.default_rng(0).integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    assert segmenter.segment(frames).masks.shape == (5, 64, 64)


def test_device_auto_is_cuda_only_when_a_cuda_device_is_available(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert select_device("auto") == select_device("cpu") == torch.device("cpu")
    with pytest.raises(UserError, match="no CUDA device is available"):
        select_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert select_device("auto") == select_device("cuda") == torch.device("cuda")


def test_the_segmenter_chooses_the_device_as_the_command_line_does(tiny_weights, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert Segmenter(tiny_weights, device="auto").device == torch.device("cpu")
    with pytest.raises(UserError, match=r"^device = cuda, but no CUDA device is available \(use device=auto or cpu\)$"):
        Segmenter(tiny_weights, device="cuda")
