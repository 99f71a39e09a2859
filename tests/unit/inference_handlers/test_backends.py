"""How the engine runs the network (inference_handlers/inference/backends.py): the OpenVINO backend's
refusals and its cache key (the backends against eager: tests/e2e/test_compiled_and_openvino_backends.py)."""

import sys

import pytest
import torch

import main
from inference_handlers.inference.backends import OPENVINO_REQUIREMENT, network_fingerprint
from inference_handlers.inference.engine import SaliencyEngine
from network import build_model
from checkpoints.training import save_checkpoint
from utils.config import InferenceConfig, InputConfig, load_config, to_dict
from utils.errors import UserError

from support.data_trees import write_mini_davis
from support.engines import tiny_model
from support.paths import TINY_CONFIG


def test_a_missing_openvino_is_one_error_line_naming_what_to_install(tmp_path, monkeypatch, capsys):
    cfg = load_config(TINY_CONFIG)
    weights = tmp_path / "tiny.pth"
    save_checkpoint(weights, model_state=build_model(cfg.model).state_dict(), epoch=0, iteration=0, config=to_dict(cfg))
    root = write_mini_davis(tmp_path / "DAVIS", names=("bear",), num_frames=4)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "openvino", None)  # `import openvino` raises ImportError
    status = main.main(["-c", str(TINY_CONFIG), "--task", "infer", "--wts", str(weights), f"data.test_root={root}",
                        "inference.backend=openvino"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and [line for line in lines if line.startswith("error:")] == lines[-1:] == [
        f"error: inference.backend = openvino needs the openvino package: {OPENVINO_REQUIREMENT}"]


def test_openvino_runs_on_the_cpu_only():
    with pytest.raises(UserError, match="runs on the CPU .device is cuda.; set device=cpu"):
        SaliencyEngine(tiny_model(), InferenceConfig(backend="openvino"), InputConfig(), torch.device("cuda"))


def test_the_fingerprint_follows_the_weights_and_the_settings():
    model = tiny_model()
    same = network_fingerprint(model, "a") == network_fingerprint(tiny_model(), "a")
    with torch.no_grad():
        changed = tiny_model()
        changed.decoders[0].pred2.bias[0] += 1e-6
    assert same
    assert network_fingerprint(changed, "a") != network_fingerprint(model, "a") != network_fingerprint(model, "b")
