"""How the engine runs the network (inference_handlers/inference/backends.py): the OpenVINO backend's
refusals and its cache key (the backends against eager: tests/e2e/test_compiled_and_openvino_backends.py)."""

import pytest
import torch

from inference_handlers.inference.backends import OPENVINO_REQUIREMENT, network_fingerprint
from inference_handlers.inference.engine import SaliencyEngine
from utils.config import InferenceConfig, InputConfig
from utils.errors import UserError

from support.engines import tiny_model
from support.tiny_runs import infer_without


def test_a_missing_openvino_is_one_error_line_naming_what_to_install(tmp_path, monkeypatch, capsys):
    status, lines = infer_without("openvino", "inference.backend=openvino", tmp_path, monkeypatch, capsys)
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
