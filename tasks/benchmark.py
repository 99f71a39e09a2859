"""Speed, memory and FLOPs of the configured network, and end-to-end inference speed.

Orchestration like the training loop, so it lives in tasks/ (it used to be `utils.benchmark`).

    python -m tasks.benchmark -c run_configs/bmvc_final.yaml [--height 480 --width 864]
        [--precision fp32 bf16 fp16] [--runs 5] [--warmup 2] [--peak-tflops 989]
        [--frames 21] [--end-to-end-runs 3] [--no-end-to-end] [--train-step] [section.key=value ...]

For every precision (default: inference.precision) one run, printed to stdout as one JSON line
(also collected in results/<name>/benchmark.json), with the device, threads, torch version and:

    window                  [clip_length, H, W]: --height x --width padded to a multiple of 32
    batch_size              inference.batch_size windows per forward
    ms_per_window           median over --runs forwards, after --warmup untimed ones, of the
                            forward time / batch_size; the engine's own forward (autocast,
                            inference_mode, channels_last, compile, softmax) on random clips
    frames_per_s_sparse     (clip_length - clip_overlap) new frames per window / window time
    frames_per_s_dense      one new frame per window / window time
    gflops_per_window       convolutions and matrix products counted from the layers (network/cost.py)
    tflops_achieved         gflops_per_window / ms_per_window; fraction_of_peak against --peak-tflops
    peak_memory_mib         CUDA: max allocated during the forwards; CPU: the process's peak RSS
                            so far (ru_maxrss; run one precision per call for a clean figure)
    end_to_end_frames_per_s run_inference on a generated sequence of --frames JPEG frames of
                            --height x --width (input.test_resize=unchanged) with ground truth:
                            decoding, the network, masks written as PNGs, J and F of the frames
                            inference.eval_frames names (and whatever inference.save_probs /
                            overlay ask; the other inference.* settings as in infer); median of
                            --end-to-end-runs, after the warm-up above; the config's schedule
                            (inference.dense) decides sparse or dense. Also per core (the cores
                            this process may use), the process's CPU ms per frame (all threads;
                            a figure that a shared machine's other jobs do not change much) and
                            the J&F reached; end_to_end_frames_per_s_each_run: every run's, in
                            order (the first pays for the memory that the engine reuses later)
    --null-network          end to end only, the network replaced by NullNetwork (costs next to
                            nothing): the rate the host side delivers, a ceiling for any device
    train_step_ms           with --train-step: one training step (train.batch_size clips,
                            forward + backward + Adam) at train.precision

Every inference.* setting applies (batch_size, channels_last, compile, fold_bn, backend,
prefetch_frames, write_queue): e.g. `inference.channels_last=true inference.batch_size=4`. The
weights are random.

    python -m tasks.benchmark -c run_configs/bmvc_final.yaml --height 240 --width 432 --settings
        [--setting NAME ...] [--runs 3 --warmup 0] device=cpu

Times instead the network under every inference setting (fp32 / bf16 as the engine ran it before
inference.fold_bn, folded BatchNorm, channels_last, frozen compile, OpenVINO and int8 where
installed) on one random network and clip, after a line naming the processor and its AVX-512 BF16,
VNNI and AMX: s/frame, speed-up and mask agreement against fp32, start-up
(tasks/benchmark_settings.py; results/<name>/benchmark_settings.json).

    python -m tasks.benchmark -c run_configs/bmvc_final.yaml --variants [--height 480 --width 864]

Counts instead the parameters and FLOPs of one clip_length x height x width window (batch 1) for
every model variant in VARIANTS, each applied over the config's model section, on the meta
device: seconds on a CPU, nothing computed (network/cost.py). Prints one JSON line per variant
to stdout and writes them all to results/<name>/variants.json.

    python -m tasks.benchmark -c CONFIG --corpus 20 [--frames 21 --height 480 --width 864]

Times instead one `main.py --input FOLDER` run over 20 generated videos against 20 runs of
`main.py --input VIDEO`, each a process of its own (tasks/benchmark_corpus.py).

    python -m tasks.benchmark -c CONFIG --live [--rate 10 --frames 100 --wts CHECKPOINT]
Latency p50 / p95 and dropped frames of a stream served at --rate, per window mode (tasks/benchmark_live.py).
"""

import argparse
import dataclasses
import json
import logging
import os
import platform
import resource
import runpy
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from datasets.io import write_jpeg, write_palette_png
from datasets.sequence import Sequence
from datasets.transforms import padding_for
from datasets.video import index_frame_folder
from inference_handlers.inference import build_engine
from inference_handlers.inference.background import intra_op_threads
from inference_handlers.inference.runner import run_inference
from loss import LOSSES
from network import build_model
from network.cost import count_flops, count_parameters
from tasks.benchmark_settings import SETTINGS, compare_settings
from tasks.benchmark_live import add_live_arguments, report_live_benchmark
from tasks.setup import setup_run
from utils.config import Task, choices, load_config, validate
from utils.files import write_json
from utils.precision import autocast_for

logger = logging.getLogger("benchmark")

PRECISIONS = choices("inference.precision")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(function, device, runs: int, warmup: int) -> float:
    """Median seconds of `runs` calls after `warmup` untimed ones."""
    for _ in range(warmup):
        function()
    times = []
    for _ in range(runs):
        synchronize(device)
        start = time.perf_counter()
        function()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mib(device: torch.device) -> float:
    """CUDA: max allocated since the last reset; CPU: the process's peak resident set (Linux KiB)."""
    if device.type == "cuda":
        return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10, 1)


FOREGROUND_RGB = (220, 40, 40)  # the moving ellipse of the generated sequence, on grey noise


def write_sequence(folder: Path, frames: int, height: int, width: int) -> Sequence:
    """`frames` JPEGs of noise with a moving ellipse in folder/benchmark/ and the ellipse as
    ground truth (palette PNGs in folder/benchmark_masks/, every frame annotated)."""
    sequence, masks = folder / "benchmark", folder / "benchmark_masks"
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[:height, :width]
    background = rng.integers(0, 256, (height, width, 1), dtype=np.uint8).repeat(3, axis=2)
    mask_paths = {}
    for index in range(frames):
        image = background.copy()
        center = width * (0.2 + 0.6 * index / max(frames - 1, 1))
        ellipse = ((cols - center) / (width / 8)) ** 2 + ((rows - height / 2) / (height / 5)) ** 2 <= 1
        image[ellipse] = FOREGROUND_RGB
        write_jpeg(sequence / f"{index:05d}.jpg", image)
        mask_paths[index] = masks / f"{index:05d}.png"
        write_palette_png(mask_paths[index], ellipse.astype(np.uint8))
    return dataclasses.replace(index_frame_folder(sequence), mask_paths=mask_paths, ground_truth="generated")


class NullNetwork(torch.nn.Module):
    """A stand-in for the network that costs next to nothing (`--null-network`): foreground logit
    red - green - 0.35, so it finds the red ellipse of write_sequence on its grey background;
    (B, 3, T, H, W) -> (B, 2, T, H, W). It stands for a network on a device, which costs the host
    nothing, so it keeps its own cost on the CPU small: like a GPU's caching allocator it writes
    every call's logits into one buffer (the engine has used a window's logits before its next
    call; fresh memory of this size costs more in page faults than the arithmetic), and it runs in
    one intra-op thread (OpenMP's second thread would spin after it, on a core the host side uses)."""

    def __init__(self):
        super().__init__()
        self.logits = None

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        shape = (clips.shape[0], 2, *clips.shape[2:])
        if self.logits is None or self.logits.shape != shape or self.logits.device != clips.device:
            self.logits = clips.new_zeros(shape)  # background logit 0
        with intra_op_threads(1):
            torch.sub(clips[:, 0], clips[:, 1], out=self.logits[:, 1]).sub_(0.35)
        return self.logits


def window_of(cfg, height: int, width: int) -> list[int]:
    """[clip_length, H, W] of the network's window for height x width frames (padded)."""
    (top, bottom), (left, right) = padding_for(height, width)
    return [cfg.input.clip_length, height + top + bottom, width + left + right]


def measure_network(engine, cfg, device, height: int, width: int, runs: int, warmup: int) -> dict:
    """Latency, throughput and memory of the engine's forward on random windows."""
    window = window_of(cfg, height, width)
    clips = torch.rand(cfg.inference.batch_size, 3, *window, device=device)
    reset_peak_memory(device)
    seconds = median_seconds(lambda: engine.forward_windows(clips), device, runs, warmup)
    per_window = seconds / cfg.inference.batch_size
    new_frames = cfg.input.clip_length - cfg.inference.clip_overlap
    return {"window": window, "ms_per_window": round(per_window * 1000, 2),
            "frames_per_s_sparse": round(new_frames / per_window, 2),
            "frames_per_s_dense": round(1 / per_window, 2), "peak_memory_mib": peak_memory_mib(device)}


def measure_end_to_end(engine, cfg, device, height: int, width: int, frames: int, runs: int) -> dict:
    """Frames per second of run_inference on a generated sequence with ground truth (every frame
    annotated, scored with davis2016's J and F), files written to a temp folder."""
    with tempfile.TemporaryDirectory(prefix="benchmark-") as folder:
        sequence = write_sequence(Path(folder), frames, height, width)
        reset_peak_memory(device)
        times, cpu_times = [], []
        for run in range(runs):
            start, cpu_start = time.perf_counter(), time.process_time()
            summary = run_inference(engine, [sequence], cfg.inference,
                                    results_dir=Path(folder) / f"results{run}", show_progress=False)
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)
    return {"end_to_end_frames": frames, "end_to_end_frames_per_s": round(frames / statistics.median(times), 2),
            "end_to_end_frames_per_s_each_run": [round(frames / seconds, 2) for seconds in times],
            "end_to_end_cpu_ms_per_frame": round(statistics.median(cpu_times) / frames * 1000, 2),
            "end_to_end_peak_memory_mib": peak_memory_mib(device), "end_to_end_J&F": summary["score"]}


def measure_train_step(cfg, device, window: list[int], runs: int, warmup: int) -> dict:
    """One training step (train.batch_size clips, forward + backward + Adam) at train.precision."""
    model = build_model(cfg.model).to(device).train()
    batch = torch.rand(cfg.train.batch_size, 3, *window, device=device)
    masks = (torch.rand(cfg.train.batch_size, 1, *window, device=device) > 0.9).to(torch.uint8)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    loss_fn = LOSSES[cfg.train.loss]

    def train_step():
        with autocast_for(device, cfg.train.precision):
            loss = loss_fn(model(batch), masks)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    reset_peak_memory(device)
    seconds = median_seconds(train_step, device, runs, warmup)
    return {"train_step_ms": round(seconds * 1000, 1), "train_precision": cfg.train.precision,
            "train_frames_per_s": round(cfg.train.batch_size * window[0] / seconds, 1),
            "train_peak_memory_mib": peak_memory_mib(device)}


def benchmark(cfg, device, args, precision: str) -> dict:
    """One JSON-ready row: the network alone, FLOPs, end to end and optionally a training step;
    with --null-network only end to end, the network replaced by NullNetwork."""
    cfg = dataclasses.replace(cfg, inference=dataclasses.replace(cfg.inference, precision=precision),
                              input=dataclasses.replace(cfg.input, test_resize="unchanged"))
    model = (NullNetwork() if args.null_network else build_model(cfg.model)).to(device)
    engine = build_engine(cfg, model, device)
    model.eval()
    row = {"config": cfg.name, "device": str(device), "device_name": device_name(device),
           "threads": torch.get_num_threads(), "cores": len(os.sched_getaffinity(0)),
           "torch": torch.__version__, "precision": precision, "network": "null" if args.null_network else "config",
           "batch_size": cfg.inference.batch_size, "channels_last": engine.channels_last,
           "compile": cfg.inference.compile, "dense": cfg.inference.dense}
    if not args.null_network:
        row.update(measure_network(engine, cfg, device, args.height, args.width, args.runs, args.warmup))
        flops = count_flops(lambda: build_model(cfg.model), (1, 3, *row["window"]))
        row["gflops_per_window"] = round(flops / 1e9, 1)
        row["tflops_achieved"] = float(f"{flops / (row['ms_per_window'] / 1000) / 1e12:.3g}")
        if args.peak_tflops:
            row["peak_tflops"] = args.peak_tflops
            row["fraction_of_peak"] = float(f"{row['tflops_achieved'] / args.peak_tflops:.3g}")
    if args.end_to_end_runs:
        row.update(measure_end_to_end(engine, cfg, device, args.height, args.width, args.frames,
                                      args.end_to_end_runs))
        row["end_to_end_frames_per_s_per_core"] = round(row["end_to_end_frames_per_s"] / row["cores"], 2)
    if args.train_step and not args.null_network:
        row.update(measure_train_step(cfg, device, window_of(cfg, args.height, args.width), args.runs,
                                      args.warmup))
    return row


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's model name (Linux), else its architecture."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpuinfo = Path("/proc/cpuinfo")
    for line in cpuinfo.read_text().splitlines() if cpuinfo.is_file() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


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
        flops = count_flops(lambda: model, (1, 3, frames, height, width))
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


def parse_args(argv=None):
    """The options of `python -m tools.benchmark` (this module's text); tasks/gpu_report.py builds
    its rows' options with it too."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", required=True)
    parser.add_argument("--height", type=int, default=480, help="frame height (window: padded to a multiple of 32)")
    parser.add_argument("--width", type=int, default=864, help="frame width (window: padded to a multiple of 32)")
    parser.add_argument("--precision", nargs="+", choices=PRECISIONS,
                        help="one run per precision (default: inference.precision)")
    parser.add_argument("--runs", type=int, default=5, help="timed forwards; the median is reported")
    parser.add_argument("--warmup", type=int, default=2, help="untimed forwards first (cudnn.benchmark, compile)")
    parser.add_argument("--peak-tflops", type=float, default=0.0,
                        help="the device's peak TFLOP/s at this precision, for fraction_of_peak")
    parser.add_argument("--frames", type=int, default=21, help="frames of the generated end-to-end sequence")
    parser.add_argument("--end-to-end-runs", type=int, default=3, help="end-to-end passes; the median is reported")
    parser.add_argument("--no-end-to-end", dest="end_to_end_runs", action="store_const", const=0,
                        help="time the network only")
    parser.add_argument("--train-step", action="store_true", help="also time a training step at train.precision")
    parser.add_argument("--null-network", action="store_true",
                        help="end to end only, the network replaced by a stand-in that costs nothing: "
                             "the frames/s the host side (decoding, averaging, scoring, writing) delivers")
    parser.add_argument("--settings", action="store_true",
                        help="one row per inference setting (fp32/bf16, folded BatchNorm, channels_last, frozen "
                             "compile, openvino, int8) instead of per precision: tasks/benchmark_settings.py")
    parser.add_argument("--setting", action="append", choices=list(SETTINGS), metavar="NAME",
                        help=f"with --settings, only these (repeatable; the first row, fp32-main, always): "
                             f"{', '.join(SETTINGS)}")
    parser.add_argument("--variants", action="store_true",
                        help="count parameters and FLOPs of every model variant instead of timing")
    parser.add_argument("--corpus", type=int, default=0, metavar="N",
                        help="time one --input run over N generated videos against N runs of one video each")
    add_live_arguments(parser)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_intermixed_args(argv)
    if min(args.runs, args.frames, args.height, args.width) < 1 or min(args.warmup, args.end_to_end_runs,
                                                                           args.corpus) < 0:
        parser.error("--runs, --frames, --height and --width must be >= 1, --warmup, --end-to-end-runs and "
                     "--corpus >= 0")
    return args


def run_benchmark(args) -> None:
    """The measurement that `args` (parse_args: the options of this module's text) asks
    for: the variants' costs, the corpus timing, every inference setting, or one row per precision
    (printed as JSON lines and written to results/<name>/benchmark.json)."""
    cfg = load_config(args.config, args.overrides)
    validate(cfg, Task.BENCHMARK)
    if args.variants:
        report_variants(cfg, args.height, args.width)
        return
    if args.corpus:
        from tasks.benchmark_corpus import report_corpus_benchmark
        report_corpus_benchmark(cfg, args.config, args.overrides, args)
        return
    run = setup_run(cfg, Task.BENCHMARK)
    if args.live:
        report_live_benchmark(cfg, args, run)
        return
    if args.settings:
        compare_settings(cfg, run.device, args, run.results_dir, window_of(cfg, args.height, args.width),
                         device_name(run.device))
        return
    rows = []
    for precision in args.precision or [cfg.inference.precision]:
        rows.append(benchmark(cfg, run.device, args, precision))
        sys.stdout.write(json.dumps(rows[-1]) + "\n")
        sys.stdout.flush()
    write_json(run.results_dir / "benchmark.json", rows)
    logger.info("benchmark: %d runs written to %s", len(rows), run.results_dir / "benchmark.json")


if __name__ == "__main__":  # the command's former name: python -m tasks.benchmark
    runpy.run_module("tools.benchmark", run_name="__main__", alter_sys=True)
