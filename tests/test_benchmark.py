"""python -m tasks.benchmark: one JSON line per precision with latency, throughput, FLOPs,
memory and end-to-end speed, on the tiny model."""

import json

import pytest

from network import build_model
from network.cost import count_flops
from tasks import benchmark
from utils.config import load_config

from conftest import TINY_CONFIG


def test_benchmark_prints_one_json_line_per_precision(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    status = benchmark.main(["-c", str(TINY_CONFIG), "--height", "40", "--width", "70", "--precision", "fp32", "fp16",
                             "--runs", "1", "--warmup", "0", "--frames", "6", "--end-to-end-runs", "1",
                             "--peak-tflops", "2", "name=bench", "inference.batch_size=2",
                             "inference.clip_overlap=2"])
    assert status == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["precision"] for row in lines] == ["fp32", "fp16"]
    cfg = load_config(TINY_CONFIG)
    flops = count_flops(lambda: build_model(cfg.model), (1, 3, 8, 64, 96))
    for row in lines:
        assert row["window"] == [8, 64, 96] and row["batch_size"] == 2 and row["device"] == "cpu"
        assert row["torch"] and row["device_name"] and row["threads"] >= 1
        assert row["frames_per_s_sparse"] == pytest.approx(6 * row["frames_per_s_dense"], rel=0.01)  # 8 - 2 new frames
        assert row["frames_per_s_dense"] == pytest.approx(1000 / row["ms_per_window"], rel=0.01)
        assert row["gflops_per_window"] == round(flops / 1e9, 1)
        assert row["tflops_achieved"] == pytest.approx(flops / row["ms_per_window"] / 1e9, rel=0.01)
        assert row["fraction_of_peak"] == pytest.approx(row["tflops_achieved"] / 2, rel=0.01)
        assert row["peak_memory_mib"] > 0 and row["end_to_end_frames"] == 6 and row["end_to_end_frames_per_s"] > 0
    assert json.loads((tmp_path / "results" / "bench" / "benchmark.json").read_text()) == lines


def test_benchmark_rejects_a_precision_outside_the_closed_set(capsys):
    with pytest.raises(SystemExit):
        benchmark.main(["-c", str(TINY_CONFIG), "--precision", "fp8"])
    assert "fp8" in capsys.readouterr().err
