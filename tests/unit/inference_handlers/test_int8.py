"""Mixed int8 (inference.precision: int8, inference_handlers/quantized.py): which backend runs it,
its refusals, and its masks against fp32 eager on the tiny model; what `auto` resolves to for
inference.backend and inference.channels_last."""

import logging

import pytest
import torch

from datasets.davis import index_davis
from inference_handlers.inference.backends import resolved_settings, runtime, uses_channels_last
from inference_handlers.inference.quantized import NNCF_REQUIREMENT, heavy_convolutions
from tasks.benchmark_settings import cpu_description
from utils.config import InferenceConfig, load_config
from utils.config_loading import check_choices
from utils.errors import UserError

from support.data_trees import write_mini_davis
from support.engines import AGREEMENT, agreement, engine, probabilities, tiny_model
from support.paths import TINY_CONFIG
from support.tiny_runs import infer_without


@pytest.mark.parametrize("precision, backend, expected", [
    ("int8", "auto", "openvino"), ("bf16", "auto", "torch"), ("fp32", "auto", "torch"),
    ("int8", "openvino", "openvino"), ("bf16", "openvino", "openvino"), ("bf16", "torch", "torch")])
def test_auto_backend_is_openvino_for_int8_only(precision, backend, expected):
    assert runtime(InferenceConfig(precision=precision, backend=backend)) == expected


def test_int8_on_the_torch_backend_is_refused():
    with pytest.raises(UserError, match="int8 runs on the openvino backend; set inference.backend=auto"):
        runtime(InferenceConfig(precision="int8", backend="torch"))


def test_validation_during_training_runs_int8_as_torch_bf16():
    settings = resolved_settings(InferenceConfig(precision="int8"), torch.device("cpu"), live_network=True)
    assert (settings.backend, settings.precision, settings.channels_last) == ("torch", "bf16", False)


def test_int8_on_a_gpu_is_refused_naming_the_precision():
    with pytest.raises(UserError, match="int8 runs on the CPU .device is cuda.; set device=cpu or another"):
        resolved_settings(InferenceConfig(precision="int8"), torch.device("cuda"), live_network=False)


def test_the_default_config_runs_torch():
    assert runtime(InferenceConfig()) == "torch"


@pytest.mark.parametrize("precision, device, live_network, backend, expected", [
    ("bf16", "cpu", False, "auto", True), ("fp32", "cpu", False, "auto", False),
    ("bf16", "cuda", False, "auto", False), ("bf16", "cpu", True, "auto", False),
    ("bf16", "cpu", False, "openvino", False), ("int8", "cpu", False, "auto", False)])
def test_auto_channels_last_is_on_for_bf16_on_the_cpu_with_torch(precision, device, live_network, backend, expected):
    inference = InferenceConfig(precision=precision, backend=backend)
    assert uses_channels_last(inference, torch.device(device), live_network) is expected


@pytest.mark.parametrize("given", [True, False])
def test_channels_last_given_is_kept(given):
    assert uses_channels_last(InferenceConfig(channels_last=given), torch.device("cpu"), False) is given


@pytest.mark.parametrize("text, expected", [("true", True), ("false", False), ("auto", "auto")])
def test_channels_last_takes_true_false_and_auto(text, expected):
    assert load_config(TINY_CONFIG, [f"inference.channels_last={text}"]).inference.channels_last == expected


def test_another_channels_last_is_refused_with_the_choices():
    with pytest.raises(UserError, match="choose from true, false, auto"):
        check_choices(load_config(TINY_CONFIG, ["inference.channels_last=maybe"]))


def test_the_default_engine_runs_fp32_in_the_default_layout_and_bf16_in_channels_last():
    def conv_weight(engine):
        return engine.model.decoders[0].pred2.weight
    fp32, bf16 = engine(tiny_model()), engine(tiny_model(), precision="bf16")
    assert not fp32.channels_last and conv_weight(fp32).is_contiguous()
    assert bf16.channels_last and conv_weight(bf16).is_contiguous(memory_format=torch.channels_last_3d)


def test_only_the_finest_refinement_block_is_quantized():
    names = set(heavy_convolutions(tiny_model()))
    assert names == {f"decoders.0.RF2.{conv}" for conv in ("convFS1", "convFS2", "convFS3", "convMM1", "convMM2")}


def test_the_processor_line_names_the_model_and_the_flags():
    cpuinfo = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx512_bf16 avx512_vnni\n"
    assert cpu_description(cpuinfo) == \
        "cpu: AMD EPYC; avx512_bf16 yes, avx512_vnni yes, amx_bf16 no, amx_int8 no"


def test_a_missing_nncf_is_one_error_line_naming_what_to_install(tmp_path, monkeypatch, capsys):
    pytest.importorskip("openvino")
    status, lines = infer_without("nncf", "inference.precision=int8", tmp_path, monkeypatch, capsys)
    assert status == 2 and [line for line in lines if line.startswith("error:")] == lines[-1:] == [
        f"error: inference.precision = int8 needs the nncf package: {NNCF_REQUIREMENT}"]


@pytest.fixture(scope="module")
def sequence(tmp_path_factory):
    root = write_mini_davis(tmp_path_factory.mktemp("data") / "DAVIS", names=("bear",), num_frames=10)
    return index_davis(root, "2016/val.txt")[0]


@pytest.mark.slow  # converting and quantizing the network: about ten seconds
def test_int8_masks_agree_with_fp32_eager_and_a_second_run_reads_the_quantized_network(
        sequence, tmp_path, monkeypatch, caplog):
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    caplog.set_level(logging.INFO, logger="inference_handlers")
    reference = probabilities(engine(tiny_model()), sequence)
    int8_engine = engine(tiny_model(), precision="int8")
    int8 = probabilities(int8_engine, sequence)
    assert "5 convolutions quantized" in caplog.text
    fake_quantized = [op for op in int8_engine.openvino.graph.get_ordered_ops() if op.get_type_name() == "FakeQuantize"]
    assert len(fake_quantized) == 5  # the inputs of RF2's convolutions, nothing else
    assert agreement(int8, reference) >= AGREEMENT
    assert not torch.equal(int8, reference)  # it is not fp32 under another name
    caplog.clear()
    again = probabilities(engine(tiny_model(), precision="int8"), sequence)
    assert "quantized" not in caplog.text and "converted" not in caplog.text  # both read from the cache
    assert torch.equal(again, int8)
