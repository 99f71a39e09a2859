"""`python -m tools.gpu_report --smoke`: the GPU report's code on the CPU with the demo's tiny
model: every part writes its rows to the JSON, a failing row is recorded and the others still
run, and the Markdown table has a line per row. The parts' time budgets (a part skips the rows that
would start after its budget) are lifted to an hour each, so that every row runs on any machine."""

import json
from types import SimpleNamespace

import pytest

from tasks import benchmark, gpu_report
from tools import gpu_report as gpu_report_command


@pytest.mark.slow  # every part of the report, about 12 s
def test_smoke_report_has_every_part_and_survives_a_failing_row(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    original, calls = benchmark.benchmark, []

    def first_row_fails(cfg, device, args, precision):
        calls.append(precision)
        if len(calls) == 1:
            raise RuntimeError("CUDA error: out of memory")
        return original(cfg, device, args, precision)

    monkeypatch.setattr(benchmark, "benchmark", first_row_fails)
    unbounded = {part: 3600 for part in gpu_report.SMOKE.budgets}
    monkeypatch.setattr(gpu_report, "SMOKE", SimpleNamespace(**{**vars(gpu_report.SMOKE), "budgets": unbounded}))
    assert gpu_report_command.main(["--smoke", "--out", "report.json"]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    rows = {(row["part"], row["name"]): row for row in report["rows"]}
    assert report["settings"]["smoke"] and report["settings"]["device"] == "cpu"
    assert [part for part, _ in rows] == ["tests", "network", "network", "host", "host", "train", "loader", "loader"]
    assert rows["tests", "pytest -m cuda"]["returncode"] in (0, 5) and "skipped" in rows["tests", "pytest -m cuda"]["summary"]
    failed, network = [row for (part, _), row in rows.items() if part == "network"]
    assert failed["error"] == "RuntimeError: CUDA error: out of memory"
    assert network["ms_per_window"] > 0 and network["end_to_end_frames"] == 6 and network["batch_size"] == 2
    assert all(row["end_to_end_J&F"] > 0.9 for (part, _), row in rows.items() if part == "host")
    assert next(row for (part, _), row in rows.items() if part == "train")["train_step_ms"] > 0
    assert all(row["clips_per_s"] > 0 and row["clip"] == [3, 8, 64, 96]
               for (part, _), row in rows.items() if part == "loader")
    table = capsys.readouterr().out.strip().splitlines()
    assert table[0].startswith("| part | configuration |") and len(table) == 2 + len(rows)
    assert "CUDA error: out of memory" in table[3]
