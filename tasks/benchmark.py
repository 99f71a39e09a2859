"""Speed and memory of the configured network on synthetic clips.

    python -m tasks.benchmark -c run_configs/bmvc_final.yaml [--height 480 --width 864]
        [--iterations 10] [section.key=value ...]

Times one inference window (batch 1, no grad) and one training step (train.batch_size clips,
forward + backward + Adam) at the configured device and train.precision, after warm-up, and
reports milliseconds, frames per second and peak GPU memory. Results go to the log and to
results/<name>/benchmark.json.

    python -m tasks.benchmark -c run_configs/bmvc_final.yaml --variants [--height 480 --width 864]

Counts instead the parameters and FLOPs of one clip_length x height x width window (batch 1) for
every model variant in VARIANTS, each applied over the config's model section, on the meta
device: seconds on a CPU, nothing computed (network/cost.py). Prints one JSON line per variant
to stdout and writes them all to results/<name>/variants.json.
"""

import argparse
import dataclasses
import json
import logging
import sys
import time

from pathlib import Path

import torch

from inference_handlers.writers import write_json
from loss import LOSSES
from network import build_model
from network.cost import count_flops, count_parameters
from utils.config import load_config, validate
from utils.errors import UserError, report
from tasks.setup import setup_run
from utils.precision import autocast_for

logger = logging.getLogger("benchmark")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(function, device, iterations: int, warmup: int = 2) -> float:
    """Mean seconds per call after `warmup` untimed calls."""
    for _ in range(warmup):
        function()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(iterations):
        function()
    synchronize(device)
    return (time.perf_counter() - start) / iterations


def measure(cfg, device, height: int, width: int, iterations: int) -> dict:
    model = build_model(cfg.model).to(device)
    frames = cfg.input.clip_length
    clip = torch.rand(1, 3, frames, height, width, device=device)
    batch = torch.rand(cfg.train.batch_size, 3, frames, height, width, device=device)
    masks = (torch.rand(cfg.train.batch_size, 1, frames, height, width, device=device) > 0.9).to(torch.uint8)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    loss_fn = LOSSES[cfg.train.loss]

    @torch.no_grad()
    def infer_window():
        with autocast_for(device, cfg.train.precision):
            model(clip)

    def train_step():
        with autocast_for(device, cfg.train.precision):
            loss = loss_fn(model(batch), masks)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    results = {}
    for name, function, clips in (("infer_window", infer_window, 1),
                                  ("train_step", train_step, cfg.train.batch_size)):
        model.train(name == "train_step")
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        seconds = time_call(function, device, iterations)
        results[name] = {"ms": round(seconds * 1000, 2), "frames_per_s": round(clips * frames / seconds, 1)}
        if device.type == "cuda":
            results[name]["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    return results


# Variant name -> model-section overrides. The first is the paper's network (bmvc_final.yaml);
# every other changes one part of it (the encoders with their standard depths).
VARIANTS = {
    "paper: csn_ir-152 + GC3d + Refine3d": {},
    "csn_ip-152": {"backbone": "csn_ip"},
    "csn_ir-50": {"depths": [3, 4, 6, 3]},
    "resnet-50": {"backbone": "resnet", "depths": [3, 4, 6, 3]},
    "resnet-101": {"backbone": "resnet", "depths": [3, 4, 23, 3]},
    "resnet-152": {"backbone": "resnet", "depths": [3, 8, 36, 3]},
    "resnet-200": {"backbone": "resnet", "depths": [3, 24, 36, 3]},
    "resnet_basic-18": {"backbone": "resnet_basic", "depths": [2, 2, 2, 2]},
    "resnet_basic-34": {"backbone": "resnet_basic", "depths": [3, 4, 6, 3]},
    **{f"inter {name}": {"inter_block": name} for name in ("C3D", "NL", "ASPP")},
    **{f"refine {name}": {"refine_block": name} for name in (
        "Refine2plus1d", "Refine3dLight", "Refine3dLightGN", "Refine3dDG", "Refine3dConvTranspose",
        "RefineSimple")},
}


def variant_costs(model_config, frames: int, height: int, width: int, variants=None) -> list[dict]:
    """Parameters (encoder, decoder, total) and GFLOPs per window for every entry of `variants`
    (default VARIANTS)."""
    rows = []
    for name, changes in (VARIANTS if variants is None else variants).items():
        variant = dataclasses.replace(model_config, **changes)
        with torch.device("meta"):
            model = build_model(variant)
        flops = count_flops(lambda: build_model(variant), (1, 3, frames, height, width))
        rows.append({"variant": name, "backbone": variant.backbone, "depths": list(variant.depths),
                     "inter_block": variant.inter_block, "refine_block": variant.refine_block,
                     "params_m": round(count_parameters(model) / 1e6, 2),
                     "encoder_params_m": round(count_parameters(model.encoder) / 1e6, 2),
                     "decoder_params_m": round(count_parameters(model.decoders) / 1e6, 2),
                     "gflops": round(flops / 1e9, 1), "window": [frames, height, width]})
    return rows


def report_variants(cfg, height: int, width: int) -> None:
    rows = variant_costs(cfg.model, cfg.input.clip_length, height, width)
    for row in rows:
        sys.stdout.write(json.dumps(row) + "\n")
    write_json(Path("results") / cfg.name / "variants.json", rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", required=True)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=864)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--variants", action="store_true",
                        help="count parameters and FLOPs of every model variant instead of timing")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_intermixed_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
        validate(cfg, "benchmark")
        if args.variants:
            report_variants(cfg, args.height, args.width)
            return 0
        run = setup_run(cfg, "benchmark")
        results = measure(cfg, run.device, args.height, args.width, args.iterations)
    except UserError as error:
        return report(error)
    summary = {"config": cfg.name, "device": str(run.device), "gpu": torch.cuda.get_device_name(run.device)
               if run.device.type == "cuda" else None, "precision": cfg.train.precision,
               "clip": [cfg.input.clip_length, args.height, args.width], "batch_size": cfg.train.batch_size,
               **results}
    write_json(run.results_dir / "benchmark.json", summary)
    logger.info("benchmark: %s", json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
