"""python -m tasks.benchmark: one JSON line per precision with latency, throughput, FLOPs,
memory and end-to-end speed; FLOPs (network/cost.py) against counts derived by hand."""

import json

import pytest
import torch

from network.cost import count_flops
from tasks import benchmark, benchmark_settings
from tools import benchmark as benchmark_tool

from support.paths import TINY_CONFIG


@pytest.mark.parametrize("build, clip_shape, expected", [
    # output voxels x output channels x multiply-adds per output (in channels / groups x kernel volume) x 2
    (lambda: torch.nn.Conv3d(3, 4, 3, padding=1), (1, 3, 2, 4, 4), (2 * 4 * 4) * 4 * (3 * 27) * 2),
    # stride 2 with padding 1: (4, 8, 8) -> (2, 4, 4); the bias adds nothing
    (lambda: torch.nn.Conv3d(4, 8, 3, stride=2, padding=1), (1, 4, 4, 8, 8), (2 * 4 * 4) * 8 * (4 * 27) * 2),
    # depthwise (groups = channels), batch of 2: each output sees one input channel
    (lambda: torch.nn.Conv3d(8, 8, 3, padding=1, groups=8), (2, 8, 4, 8, 8), 2 * (4 * 8 * 8) * 8 * (1 * 27) * 2),
    # transposed: every input voxel and input channel is spread over out channels x kernel volume
    (lambda: torch.nn.ConvTranspose3d(4, 2, (1, 4, 4), stride=(1, 2, 2), padding=(0, 1, 1)), (1, 4, 2, 4, 4),
     (2 * 4 * 4) * 4 * 2 * (1 * 4 * 4) * 2),
    (lambda: torch.nn.Linear(5, 7), (3, 5), 3 * 7 * 5 * 2),
    # normalisation, activations and resizes are left out (network/cost.py): the 1x1x1 convolution only
    (lambda: torch.nn.Sequential(torch.nn.Conv3d(3, 4, 1, bias=False), torch.nn.BatchNorm3d(4), torch.nn.ReLU()),
     (1, 3, 2, 4, 4), (2 * 4 * 4) * 4 * 3 * 2),
    (lambda: torch.nn.BatchNorm3d(4), (1, 4, 2, 4, 4), 0),
    (lambda: torch.nn.Upsample(scale_factor=2, mode="trilinear"), (1, 3, 2, 4, 4), 0),
])
def test_flop_count_of_single_layers_equals_the_hand_count(build, clip_shape, expected):
    assert count_flops(build, clip_shape) == expected


class TwoConvolutions(torch.nn.Sequential):
    """A stand-in network whose FLOPs are easy to count: 3 -> 64 -> 2 channels, 3x3x3 kernels."""

    def __init__(self, model_config=None):
        super().__init__(torch.nn.Conv3d(3, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv3d(64, 2, 3, padding=1))


def test_benchmark_prints_one_json_line_per_precision(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(benchmark, "build_model", TwoConvolutions)
    status = benchmark_tool.main(["-c", str(TINY_CONFIG), "--height", "40", "--width", "70", "--precision", "fp32", "fp16",
                             "--runs", "1", "--warmup", "0", "--frames", "6", "--end-to-end-runs", "1",
                             "--peak-tflops", "2", "name=bench", "inference.batch_size=2",
                             "inference.clip_overlap=2"])
    assert status == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["precision"] for row in lines] == ["fp32", "fp16"]
    flops = (8 * 64 * 96) * (64 * 3 * 27 + 2 * 64 * 27) * 2  # window 8 x 40 x 70 padded to multiples of 32
    for row in lines:
        assert row["window"] == [8, 64, 96] and row["batch_size"] == 2 and row["device"] == "cpu"
        assert row["torch"] and row["device_name"] and row["threads"] >= 1
        assert row["frames_per_s_sparse"] == pytest.approx(6 * row["frames_per_s_dense"], rel=0.01)  # 8 - 2 new frames
        assert row["frames_per_s_dense"] == pytest.approx(1000 / row["ms_per_window"], rel=0.01)
        assert row["gflops_per_window"] == 0.8  # 0.849 GFLOPs
        assert row["tflops_achieved"] == pytest.approx(flops / 1e12 / (row["ms_per_window"] / 1000), rel=0.01)
        assert row["fraction_of_peak"] == pytest.approx(flops / 1e12 / (row["ms_per_window"] / 1000) / 2, rel=0.01)
        assert row["peak_memory_mib"] > 0 and row["end_to_end_frames"] == 6 and row["end_to_end_frames_per_s"] > 0
    assert json.loads((tmp_path / "results" / "bench" / "benchmark.json").read_text()) == lines


def test_benchmark_rejects_a_precision_outside_the_closed_set(capsys):
    with pytest.raises(SystemExit):
        benchmark_tool.main(["-c", str(TINY_CONFIG), "--precision", "fp8"])
    assert "fp8" in capsys.readouterr().err


def test_benchmark_settings_rows_compare_each_setting_with_fp32_eager(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    status = benchmark_tool.main(["-c", str(TINY_CONFIG), "--height", "64", "--width", "96", "--settings",
                             "--setting", "fp32-folded", "--setting", "bf16-folded-cl", "--runs", "1",
                             "--warmup", "0", "name=bench"])
    assert status == 0
    out = capsys.readouterr().out.splitlines()
    rows = [json.loads(line) for line in out if line.startswith("{")]
    assert [row["setting"] for row in rows] == ["fp32-main", "fp32-folded", "bf16-folded-cl"]
    reference, folded, fast = rows
    assert (reference["speedup"], reference["agreement"]) == (1.0, 1.0)
    assert (reference["fold_bn"], reference["as_main"], folded["as_main"]) == (False, True, False)
    assert (folded["precision"], folded["fold_bn"], fast["precision"], fast["channels_last"]) == ("fp32", True, "bf16", True)
    assert folded["agreement"] >= 0.999 and fast["agreement"] >= 0.99
    for row in rows:
        assert row["window"] == [8, 64, 96] and row["s_per_frame"] == pytest.approx(row["ms_per_window"] / 5000, abs=1e-4)
        assert row["startup_s"] >= -row["ms_per_window"] / 1000  # a first window may be the fastest
    assert out[-5:-3] == ["| setting | s/frame | speed-up vs fp32-main | masks equal to fp32-main | start-up |",
                          "|---|---|---|---|---|"]
    assert [line.split(" | ")[:3] for line in out[-3:]] == [
        [f"| {row['setting']}", f"{row['s_per_frame']:.3f}", f"{row['speedup']:.2f}x"] for row in rows]
    assert json.loads((tmp_path / "results" / "bench" / "benchmark_settings.json").read_text()) == rows


def test_benchmark_settings_agreement_and_speedup_are_against_the_first_row(tmp_path, monkeypatch, capsys):
    """Each setting's masks are compared with the first row's, and its time divides the first's."""
    monkeypatch.chdir(tmp_path)
    seconds = {"fp32-main": 0.4, "bf16-main": 0.1, "fp32-folded": 0.2}

    def measured(cfg, model, device, clip, name, runs, warmup):
        probabilities = torch.zeros(1, 2, 8, 4, 4)
        probabilities[:, 1, :, :2] = 1.0 if name == "bf16-main" else -1.0  # half of the pixels differ
        return {"setting": name, "s_per_frame": seconds[name], "startup_s": 0.0}, probabilities

    monkeypatch.setattr(benchmark_settings, "measure_setting", measured)
    assert benchmark_tool.main(["-c", str(TINY_CONFIG), "--settings", "--setting", "bf16-main", "--setting",
                           "fp32-folded", "name=bench"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [(row["setting"], row["speedup"], row["agreement"]) for row in rows] == [
        ("fp32-main", 1.0, 1.0), ("bf16-main", 4.0, 0.5), ("fp32-folded", 2.0, 1.0)]
