"""`python -m tasks.benchmark --settings`: every inference setting of the network in one run.

    python -m tasks.benchmark -c run_configs/bmvc_final.yaml --height 240 --width 432 --settings
        [--setting NAME ...] [--runs 3 --warmup 0] device=cpu

The processor first (lscpu's model name and whether it has the instructions that matter: AVX-512
BF16, VNNI, AMX), then one row per setting of SETTINGS (all, or those --setting names after the
first; openvino rows only where openvino is installed, int8 only with nncf too),
each on a copy of the same random weights and the same random clip of --height x --width (padded
to a multiple of 32), printed as one JSON line and, at the end, as a Markdown table; all rows also
go to results/<name>/benchmark_settings.json:

    s_per_frame       the median window time (after the first window and --warmup more) per new
                      frame of the config's schedule (clip_length - clip_overlap; 1 when dense)
    speedup           s_per_frame of the first row (fp32-main, the original's computation) / this
    agreement         the fraction of pixels whose argmax over the classes (the mask) equals the
                      first row's, on the random clip (random weights: their masks are close to
                      ties, so this is a harsh measure)
    startup_s         engine built (BatchNorm folded, weights cast, torch.compile, OpenVINO
                      conversion) and the first window computed, less one window's time

The "-main" rows run the network as the engine did before inference.fold_bn existed (no folding,
weights cast by autocast at every call: the engine's `live_network` path); "cl": channels_last.
The int8 row calibrates on the clip it is timed on, as the engine calibrates on the first windows
of the frames it infers.
"""

import copy
import dataclasses
import importlib.util
import json
import logging
import statistics
import sys
import time
from pathlib import Path

import torch

from inference_handlers.inference import build_engine
from network import build_model
from utils.files import write_json

logger = logging.getLogger("benchmark")

BASE = {"precision": "fp32", "fold_bn": True, "channels_last": False, "compile": False, "backend": "torch"}
# name -> (inference.* overrides over BASE, run as the training network is: unchanged weights)
SETTINGS = {
    "fp32-main": ({}, True),
    "bf16-main": ({"precision": "bf16"}, True),
    "bf16-cl-main": ({"precision": "bf16", "channels_last": True}, True),
    "fp32-folded": ({}, False),
    "bf16-folded": ({"precision": "bf16"}, False),
    "bf16-folded-cl": ({"precision": "bf16", "channels_last": True}, False),
    "bf16-folded-cl-frozen-compile": ({"precision": "bf16", "channels_last": True, "compile": True}, False),
    "openvino-fp32": ({"backend": "openvino"}, False),
    "openvino-bf16": ({"backend": "openvino", "precision": "bf16"}, False),
    "openvino-int8": ({"backend": "auto", "precision": "int8"}, False),
}
CPU_FLAGS = ("avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8")


def cpu_description(cpuinfo: str) -> str:
    """The processor's model name and which of CPU_FLAGS it has, from /proc/cpuinfo's text."""
    fields = dict(line.split(":", 1) for line in cpuinfo.splitlines() if ":" in line)
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    flags = set(fields.get("flags", "").split())
    has = ", ".join(f"{flag} {'yes' if flag in flags else 'no'}" for flag in CPU_FLAGS)
    return f"cpu: {fields.get('model name', 'unknown')}; {has}"


def setting_names(requested) -> list[str]:
    """The settings asked for (all when none are named), the reference first; openvino rows only
    where the package is installed, int8 only where nncf is too."""
    names = list(SETTINGS) if not requested else [next(iter(SETTINGS)), *requested]
    for package, needs in (("openvino", lambda overrides: overrides.get("backend") == "openvino"
                            or overrides.get("precision") == "int8"),
                           ("nncf", lambda overrides: overrides.get("precision") == "int8")):
        if importlib.util.find_spec(package) is None:
            left_out = [name for name in names if needs(SETTINGS[name][0])]
            if left_out:
                logger.info("left out (%s is not installed: pip install -r requirements-openvino.txt): %s",
                            package, ", ".join(left_out))
            names = [name for name in names if name not in left_out]
    return list(dict.fromkeys(names))


def measure_setting(cfg, model, device, clip, name: str, runs: int, warmup: int) -> tuple[dict, torch.Tensor]:
    """One row and the first window's probabilities."""
    overrides, live = SETTINGS[name]
    cfg = dataclasses.replace(cfg, inference=dataclasses.replace(cfg.inference, **{**BASE, **overrides}))
    start = time.perf_counter()
    engine = build_engine(cfg, model, device, live_network=live)
    engine.model.eval()
    probabilities = engine.forward_windows(clip).clone()
    first_window = time.perf_counter() - start
    for _ in range(warmup):
        engine.forward_windows(clip)
    times = []
    for _ in range(runs):
        begin = time.perf_counter()
        engine.forward_windows(clip)
        times.append(time.perf_counter() - begin)
    window = statistics.median(times)
    new_frames = 1 if cfg.inference.dense else cfg.input.clip_length - cfg.inference.clip_overlap
    row = {"setting": name, "s_per_frame": round(window / new_frames, 4), "ms_per_window": round(window * 1000, 1),
           "startup_s": round(first_window - window, 2), **{key: getattr(cfg.inference, key) for key in BASE},
           "as_main": live}
    row["fold_bn"] = row["fold_bn"] and not live  # the live path leaves the network as it is
    return row, probabilities


def compare_settings(cfg, device, args, results_dir, window: list[int], device_name: str) -> list[dict]:
    """Every requested setting on copies of one random network and one random clip of `window`
    ([clip_length, H, W]); `device_name` goes into every row."""
    if device.type == "cpu" and Path("/proc/cpuinfo").is_file():
        sys.stdout.write(cpu_description(Path("/proc/cpuinfo").read_text()) + "\n")
    torch.manual_seed(cfg.seed)
    network = build_model(cfg.model).to(device).eval()
    clip = torch.rand(cfg.inference.batch_size, 3, *window, generator=torch.Generator().manual_seed(0)).to(device)
    rows, reference = [], None
    for name in setting_names(args.setting):
        row, probabilities = measure_setting(cfg, copy.deepcopy(network), device, clip, name, args.runs, args.warmup)
        labels = probabilities.argmax(dim=1)
        reference = labels if reference is None else reference
        row.update(speedup=round(rows[0]["s_per_frame"] / row["s_per_frame"], 2) if rows else 1.0,
                   agreement=round(float((labels == reference).float().mean()), 5), window=window,
                   device=str(device), device_name=device_name, threads=torch.get_num_threads(),
                   torch=torch.__version__)
        rows.append(row)
        sys.stdout.write(json.dumps(row) + "\n")
        sys.stdout.flush()
        write_json(results_dir / "benchmark_settings.json", rows)
    sys.stdout.write(markdown_table(rows))
    return rows


def markdown_table(rows: list[dict]) -> str:
    lines = ["| setting | s/frame | speed-up vs fp32-main | masks equal to fp32-main | start-up |",
             "|---|---|---|---|---|"]
    lines += [f"| {row['setting']} | {row['s_per_frame']:.3f} | {row['speedup']:.2f}x | "
              f"{100 * row['agreement']:.2f} % | {row['startup_s']:.1f} s |" for row in rows]
    return "\n".join(lines) + "\n"
