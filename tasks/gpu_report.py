"""One prepared run that measures everything the GPU should be measured on (at most 8 minutes
on one H100/H200), for docs/performance.md:

    python -m tasks.gpu_report [--out results/gpu_report.json] [--smoke]

Parts, in order, each with its own time budget (a part that runs out stops starting rows and
says so) and each row failure-isolated (an exception becomes that row's "error"; the next row
runs); the JSON is rewritten atomically after every row, so a run killed at any point keeps what
it measured:

    tests        `pytest -m cuda` in a subprocess (killed at its budget): counts and the tail
    network      bmvc_final.yaml at 480x854 (windows 8x480x864): fp16 and bf16 x channels_last
                 off/on x batch_size 1/2/4, tasks.benchmark's rows (ms per window, frames/s
                 sparse and dense, fraction of peak), each with end to end on a generated
                 sequence of 100 frames with ground truth (decoding, J and F, PNG masks)
    host         the same end to end with the network replaced by a stand-in that costs nothing
                 (benchmark --null-network): the host side's ceiling on this machine
    train        a training step at train.batch_size 2, bf16 and fp16 (benchmark --train-step)
    loader       the training loader's clips/s with one worker per core: DAVIS-size clips (a
                 generated 480x854 DAVIS tree) and COCO pseudo-clips (generated 480x640 images)

Then prints a Markdown table. `--smoke` runs the same code on the CPU with the demo's tiny model
and small sizes (a test runs it).
"""

import argparse
import dataclasses
import json
import logging
import os
import runpy
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from datasets import build_train_dataset
from datasets.io import write_jpeg
from datasets.synthetic import generate_synthetic_davis
from tasks import benchmark
from tasks.train import build_loader
from utils.config import load_config
from utils.files import write_json

logger = logging.getLogger("gpu_report")
REPO_ROOT = Path(__file__).resolve().parent.parent

FULL = SimpleNamespace(config=str(REPO_ROOT / "run_configs/bmvc_final.yaml"), device="cuda", height=480, width=854, frames=100,
                       precisions=("bf16", "fp16"), channels_last=(True, False), batch_sizes=(1, 2, 4),
                       runs=5, warmup=3, peak_tflops={"fp16": 989.0, "bf16": 989.0}, loader_batches=20,
                       loader_size=(480, 854), coco_size=(480, 640),
                       budgets={"tests": 170, "network": 170, "host": 30, "train": 40, "loader": 50})
SMOKE = SimpleNamespace(config=str(REPO_ROOT / "run_configs/demo.yaml"), device="cpu", height=40, width=70, frames=6,
                        precisions=("fp32",), channels_last=(False, True), batch_sizes=(2,),
                        runs=1, warmup=0, peak_tflops={}, loader_batches=2, loader_size=(64, 96), coco_size=(64, 80),
                        budgets={"tests": 60, "network": 60, "host": 20, "train": 20, "loader": 30})


class Report:
    """Rows collected so far, rewritten atomically to `path` after each one."""

    def __init__(self, path: Path, settings: dict):
        self.path, self.settings, self.rows = path, settings, []

    def add(self, row: dict) -> None:
        self.rows.append(row)
        write_json(self.path, {"settings": self.settings, "rows": self.rows})
        logger.info("%s", json.dumps(row))


def run_rows(report: Report, part: str, budget_s: float, rows) -> None:
    """Add each (name, function) of `rows` as a row of `part`: its dict, or its error; rows that
    would start after the part's budget are recorded as skipped."""
    start = time.perf_counter()
    for name, function in rows:
        if time.perf_counter() - start > budget_s:
            report.add({"part": part, "name": name, "skipped": f"part's time budget ({budget_s:g} s) used up"})
            continue
        row_start = time.perf_counter()
        try:
            row = {"part": part, "name": name, **function()}
        except Exception as error:  # one failing row must not lose the others
            row = {"part": part, "name": name, "error": f"{type(error).__name__}: {error}"[:2000]}
        row["seconds"] = round(time.perf_counter() - row_start, 1)
        report.add(row)


def cuda_tests(budget_s: float) -> dict:
    """`pytest -m cuda tests/e2e/test_cuda.py` in a subprocess; its summary line and tail."""
    command = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-rfEs", "tests/e2e/test_cuda.py"]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=budget_s, cwd=REPO_ROOT)
    except subprocess.TimeoutExpired as expired:
        output = expired.stdout or ""
        output = output.decode() if isinstance(output, bytes) else output
        return {"returncode": None, "timed_out": True, "tail": output[-3000:]}
    lines = result.stdout.strip().splitlines()
    return {"returncode": result.returncode, "summary": lines[-1] if lines else "", "tail": result.stdout[-3000:]}


def benchmark_args(sizes, **changes) -> argparse.Namespace:
    """tasks.benchmark's arguments for one row."""
    args = benchmark.parse_args(["-c", sizes.config, "--height", str(sizes.height), "--width", str(sizes.width),
                                 "--frames", str(sizes.frames), "--runs", str(sizes.runs), "--warmup",
                                 str(sizes.warmup), "--end-to-end-runs", "1"])
    for key, value in changes.items():
        setattr(args, key, value)
    return args


def network_rows(cfg, device, sizes):
    for precision in sizes.precisions:
        for channels_last in sizes.channels_last:
            for batch_size in sizes.batch_sizes:
                variant = dataclasses.replace(cfg, inference=dataclasses.replace(
                    cfg.inference, channels_last=channels_last, batch_size=batch_size))
                args = benchmark_args(sizes, peak_tflops=sizes.peak_tflops.get(precision, 0.0))
                name = f"{precision}, channels_last {'on' if channels_last else 'off'}, batch {batch_size}"
                yield name, lambda v=variant, a=args, p=precision: benchmark.benchmark(v, device, a, p)


def host_rows(cfg, device, sizes):
    for write_queue in (16, 0):
        variant = dataclasses.replace(cfg, inference=dataclasses.replace(
            cfg.inference, write_queue=write_queue, prefetch_frames=write_queue))
        yield (f"null network, reader/writer threads {'on' if write_queue else 'off'}",
               lambda v=variant: benchmark.benchmark(v, device, benchmark_args(sizes, null_network=True), "fp32"))


def train_rows(cfg, device, sizes):
    window = benchmark.window_of(cfg, sizes.height, sizes.width)
    for precision in sizes.precisions:
        variant = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, precision=precision, batch_size=2))
        yield (f"train step, batch 2, {precision}",
               lambda v=variant: benchmark.measure_train_step(v, device, window, sizes.runs, sizes.warmup))


def write_coco_images(root: Path, count: int, height: int, width: int) -> Path:
    """`count` noise images with one triangle-shaped object each, in COCO's layout (train2017)."""
    rng = np.random.default_rng(0)
    images, annotations = [], []
    for image_id in range(1, count + 1):
        file_name = f"{image_id:012d}.jpg"
        write_jpeg(root / "train2017" / file_name, rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
        images.append({"id": image_id, "file_name": file_name, "height": height, "width": width})
        x, y, w, h = width * 0.2, height * 0.2, width * 0.5, height * 0.5
        annotations.append({"id": image_id, "image_id": image_id, "category_id": 1, "iscrowd": 0,
                            "bbox": [x, y, w, h], "area": w * h / 2,
                            "segmentation": [[x, y, x + w, y, x + w / 2, y + h]]})
    path = root / "annotations" / "instances_train2017.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": [{"id": 1, "name": "person", "supercategory": "person"}]}))
    return root


def loader_speed(sizes, device, dataset_overrides: list[str], budget_s: float) -> dict:
    """Clips/s of the training loader (batches of 2, a worker per core, pinned memory on
    CUDA) over sizes.loader_batches batches after the first (workers starting), within budget_s."""
    workers, batches = len(os.sched_getaffinity(0)), sizes.loader_batches
    variant = load_config(sizes.config, [f"device={sizes.device}", *dataset_overrides, f"loader.num_workers={workers}"])
    loader = build_loader(variant, build_train_dataset(variant), None, device)
    iterator, clips = iter(loader), 0
    next(iterator)
    start = time.perf_counter()
    for batch in iterator:
        clips += batch["images"].shape[0]
        if clips >= batches * variant.train.batch_size or time.perf_counter() - start > budget_s:
            break
    seconds = time.perf_counter() - start
    return {"clips_per_s": round(clips / seconds, 2), "clips": clips, "workers": workers,
            "clip": list(batch["images"].shape[1:])}


def loader_rows(device, sizes, folder: Path, budget_s: float):
    height, width = sizes.loader_size
    size = [f"input.train_size=[{height},{width}]", "input.train_resize=resize_short_edge_and_crop",
            "data.clips_per_sequence=0", "data.max_temporal_gap=12", "train.batch_size=2"]

    def davis():
        root = folder / "davis"
        generate_synthetic_davis(root, num_train=4, num_val=0, num_frames=16, height=height, width=width, seed=0)
        return loader_speed(sizes, device, size + ["data.train=synthetic", f"data.train_root={root}",
                                                   "data.train_split=2017/train.txt"], budget_s / 2)

    def coco():
        root = write_coco_images(folder / "coco", 2 * sizes.loader_batches + 8, *sizes.coco_size)
        return loader_speed(sizes, device, size + ["data.train=coco", f"data.train_root={root}",
                                                   "data.train_split=train2017"], budget_s / 2)

    yield f"loader, DAVIS-size clips ({height}x{width})", davis
    yield f"loader, COCO pseudo-clips ({sizes.coco_size[0]}x{sizes.coco_size[1]} images)", coco


def markdown_table(rows: list[dict]) -> str:
    """The rows as a Markdown table for docs/performance.md."""
    columns = [("part", "part"), ("name", "configuration"), ("ms_per_window", "ms / window"),
               ("frames_per_s_sparse", "frames/s sparse"), ("frames_per_s_dense", "frames/s dense"),
               ("fraction_of_peak", "fraction of peak"), ("end_to_end_frames_per_s", "end to end frames/s"),
               ("end_to_end_J&F", "end to end J&F"), ("train_step_ms", "train step ms"),
               ("clips_per_s", "loader clips/s"), ("peak_memory_mib", "peak MiB")]
    lines = ["| " + " | ".join(title for _, title in columns) + " | note |",
             "|" + "---|" * (len(columns) + 1)]
    for row in rows:
        note = row.get("error") or row.get("skipped") or row.get("summary") or ""
        cells = [row.get(key, "") for key, _ in columns]
        cells = [f"{value:.4g}" if isinstance(value, float) else str(value) for value in cells]
        lines.append("| " + " | ".join(cells) + f" | {str(note).splitlines()[0][:120] if note else ''} |")
    return "\n".join(lines)


def measure_everything(out: Path, smoke: bool) -> list[dict]:
    """Run every part (see this module's text) into the JSON report `out`, rewritten after each
    row; `smoke`: the same code on the CPU with a tiny model and small sizes. Returns the rows."""
    sizes = SMOKE if smoke else FULL
    device = torch.device(sizes.device)
    cfg = load_config(sizes.config, [f"device={sizes.device}"])
    report = Report(out, {"smoke": smoke, "config": sizes.config, "device": str(device),
                          "device_name": benchmark.device_name(device), "torch": torch.__version__,
                          "cores": len(os.sched_getaffinity(0)), "date": time.strftime("%Y-%m-%d")})
    run_rows(report, "tests", sizes.budgets["tests"], [("pytest -m cuda", lambda: cuda_tests(sizes.budgets["tests"]))])
    run_rows(report, "network", sizes.budgets["network"], network_rows(cfg, device, sizes))
    run_rows(report, "host", sizes.budgets["host"], host_rows(cfg, device, sizes))
    run_rows(report, "train", sizes.budgets["train"], train_rows(cfg, device, sizes))
    with tempfile.TemporaryDirectory(prefix="gpu-report-") as folder:
        run_rows(report, "loader", sizes.budgets["loader"],
                 loader_rows(device, sizes, Path(folder), sizes.budgets["loader"]))
    return report.rows


if __name__ == "__main__":  # the command's former name: python -m tasks.gpu_report
    runpy.run_module("tools.gpu_report", run_name="__main__", alter_sys=True)
