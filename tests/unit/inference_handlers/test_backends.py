"""How the engine runs the network (inference_handlers/backends.py): the OpenVINO backend against
the torch one, its cache of converted networks, and its refusals; torch.compile with freezing on a
CPU against eager."""

import logging
import sys

import pytest
import torch

import main
from datasets.davis import index_davis
from inference_handlers.backends import OPENVINO_REQUIREMENT, network_fingerprint
from inference_handlers.engine import SaliencyEngine
from network import build_model
from checkpoints.training import save_checkpoint
from utils.config import InferenceConfig, InputConfig, load_config, to_dict
from utils.errors import UserError

from support.data_trees import write_mini_davis
from support.paths import TINY_CONFIG


CPU = torch.device("cpu")
AGREEMENT = 0.99  # masks of a faster setting against fp32 eager, as docs/performance.md asks


def tiny_model(seed: int = 0):
    torch.manual_seed(seed)
    return build_model(load_config(TINY_CONFIG).model).eval()


def engine(model, **inference) -> SaliencyEngine:
    return SaliencyEngine(model, InferenceConfig(prefetch_frames=0, **inference),
                          InputConfig(clip_length=8, test_resize="unchanged", test_size=[64]), CPU)


def probabilities(engine, sequence) -> torch.Tensor:
    return torch.stack([prediction.probabilities for prediction in engine.predict(sequence)])


def agreement(first: torch.Tensor, second: torch.Tensor) -> float:
    return float((first.argmax(dim=1) == second.argmax(dim=1)).float().mean())


@pytest.fixture(scope="module")
def sequence(tmp_path_factory):
    root = write_mini_davis(tmp_path_factory.mktemp("data") / "DAVIS", names=("bear",), num_frames=10)
    return index_davis(root, "2016/val.txt")[0]


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


@pytest.mark.slow  # converting the network takes about ten seconds
def test_openvino_masks_agree_with_torch_and_a_second_run_reads_the_converted_network(
        sequence, tmp_path, monkeypatch, caplog):
    pytest.importorskip("openvino")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    caplog.set_level(logging.INFO, logger="inference_handlers.backends")
    reference = probabilities(engine(tiny_model()), sequence)
    openvino_fp32 = probabilities(engine(tiny_model(), backend="openvino"), sequence)
    assert "network converted in" in caplog.text and len(list((tmp_path / "cache/3dcseg/openvino").iterdir())) == 1
    caplog.clear()
    bf16_engine = engine(tiny_model(), backend="openvino", precision="bf16")
    openvino_bf16 = probabilities(bf16_engine, sequence)
    assert "network converted in" not in caplog.text  # read back from the cache
    assert torch.allclose(openvino_fp32, reference, rtol=0, atol=1e-4)
    assert agreement(openvino_bf16, reference) >= AGREEMENT
    (request,) = bf16_engine.openvino.requests.values()
    assert str(request.get_compiled_model().get_property("INFERENCE_PRECISION_HINT")) == "<Type: 'bfloat16'>"


@pytest.mark.slow  # inductor compiles C++ kernels: a minute on two cores
def test_frozen_compile_on_the_cpu_agrees_with_eager(sequence, caplog, monkeypatch):
    import torch._inductor.freezing as freezing
    frozen, freeze = [], freezing.freeze  # compile_fx imports it at compile time
    monkeypatch.setattr(freezing, "freeze", lambda *args, **kwargs: frozen.append(True) or freeze(*args, **kwargs))
    reference = probabilities(engine(tiny_model()), sequence)
    compiled_engine = engine(tiny_model(), compile=True, precision="bf16", channels_last=True)
    compiled = probabilities(compiled_engine, sequence)
    assert compiled_engine.compiled is not None and "torch.compile failed" not in caplog.text  # no fallback
    assert frozen  # the weights were frozen into the graph
    assert agreement(compiled, reference) >= AGREEMENT
