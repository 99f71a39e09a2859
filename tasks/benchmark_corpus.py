"""`python -m tasks.benchmark -c CONFIG --corpus N [--frames F --height H --width W] [key=value ...]`:
N generated videos of F frames of H x W segmented by one run, `main.py --task infer --input
FOLDER`, against N runs, `main.py --task infer --input VIDEO` one after the other (what a shell
loop does), each a fresh process that pays the start-up (imports, model) again. Random weights of
the config's model; the config's settings and the overrides apply to every run. Prints one JSON
line to stdout (also results/<name>/benchmark_corpus.json):

    videos, frames_per_video, height, width    what was segmented
    corpus_wall_s                              the one run, from its start to its exit
    separate_runs_wall_s                       the N runs together
    separate_run_wall_s_each                   each of them
    speedup                                    separate_runs_wall_s / corpus_wall_s
"""

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from checkpoints.training import save_checkpoint
from network import build_model
from utils.config import to_dict
from utils.files import write_json

MAIN = Path(__file__).resolve().parents[1] / "main.py"


def write_videos(folder: Path, count: int, frames: int, height: int, width: int) -> list[Path]:
    """`count` H.264 MP4s of `frames` frames of noise with a moving red square."""
    rng = np.random.default_rng(0)
    paths = []
    for number in range(count):
        path = folder / f"clip{number:03d}.mp4"
        with av.open(str(path), mode="w") as container:
            stream = container.add_stream("libx264", rate=10)
            stream.height, stream.width, stream.pix_fmt = height // 2 * 2, width // 2 * 2, "yuv420p"
            for index in range(frames):
                image = rng.integers(0, 256, (stream.height, stream.width, 3), dtype=np.uint8)
                left = (index * 4) % max(1, stream.width - stream.height // 3)
                image[: stream.height // 3, left:left + stream.height // 3] = (220, 40, 40)
                container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
            container.mux(stream.encode())
        paths.append(path)
    return paths


def timed_run(arguments: list[str], cwd: Path) -> float:
    """Seconds of one `python main.py arguments` in `cwd` (it must succeed)."""
    start = time.perf_counter()
    result = subprocess.run([sys.executable, str(MAIN), *arguments], cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"main.py {' '.join(arguments)} failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return seconds


def benchmark_corpus(cfg, config_path: str, overrides: list[str], videos: int, frames: int, height: int,
                     width: int) -> dict:
    """The JSON row of the module's docstring."""
    with tempfile.TemporaryDirectory(prefix="benchmark-corpus-") as folder:
        folder = Path(folder)
        (folder / "clips").mkdir()
        paths = write_videos(folder / "clips", videos, frames, height, width)
        weights = folder / "random.pth"
        save_checkpoint(weights, model_state=build_model(cfg.model).state_dict(), epoch=0, iteration=0,
                        config=to_dict(cfg))
        base = ["-c", str(Path(config_path).resolve()), "--task", "infer", "--wts", str(weights), *overrides]
        corpus_seconds = timed_run([*base, "--input", str(folder / "clips")], folder)
        each = [timed_run([*base, "--input", str(path), f"name={cfg.name}_separate"], folder) for path in paths]
    return {"config": cfg.name, "videos": videos, "frames_per_video": frames, "height": height, "width": width,
            "corpus_wall_s": round(corpus_seconds, 2), "separate_runs_wall_s": round(sum(each), 2),
            "separate_run_wall_s_each": [round(seconds, 2) for seconds in each],
            "speedup": round(sum(each) / corpus_seconds, 2)}


def report_corpus_benchmark(cfg, config_path: str, overrides: list[str], args) -> None:
    """Run benchmark_corpus with the command line's sizes; print and write its row."""
    row = benchmark_corpus(cfg, config_path, overrides, args.corpus, args.frames, args.height, args.width)
    sys.stdout.write(json.dumps(row) + "\n")
    write_json(Path("results") / cfg.name / "benchmark_corpus.json", row)
