"""Faster backends against fp32 eager on the tiny network: OpenVINO (converted once, then read
from its cache) and torch.compile with freezing on a CPU (inductor compiles C++ kernels)."""

import logging

import pytest
import torch

from datasets.davis import index_davis

from support.data_trees import write_mini_davis
from support.engines import AGREEMENT, agreement, engine, probabilities, tiny_model

@pytest.fixture(scope="module")
def sequence(tmp_path_factory):
    root = write_mini_davis(tmp_path_factory.mktemp("data") / "DAVIS", names=("bear",), num_frames=10)
    return index_davis(root, "2016/val.txt")[0]


@pytest.mark.slow  # converting the network takes about ten seconds
def test_openvino_masks_agree_with_torch_and_a_second_run_reads_the_converted_network(
        sequence, tmp_path, monkeypatch, caplog):
    pytest.importorskip("openvino")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    caplog.set_level(logging.INFO, logger="inference_handlers.inference.backends")
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
