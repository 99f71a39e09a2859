"""Speed and memory of the configured network on synthetic clips.

    python -m tasks.benchmark -c run_configs/bmvc_final.yaml [--height 480 --width 864]
        [--iterations 10] [section.key=value ...]

Times one inference window (batch 1, no grad) and one training step (train.batch_size clips,
forward + backward + Adam) at the configured device and train.precision, after warm-up, and
reports milliseconds, frames per second and peak GPU memory. Results go to the log and to
results/<name>/benchmark.json.
"""

import argparse
import json
import logging
import sys
import time

import torch

from inference_handlers.writers import write_json
from loss import LOSSES
from network import build_model
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", required=True)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=864)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_intermixed_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
        validate(cfg, "benchmark")
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
