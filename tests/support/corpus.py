"""A corpus of videos and frame folders for `--input` runs of the tiny model, and how to run main.py
on it in this process and read back its masks."""

from pathlib import Path

import numpy as np
from PIL import Image

import main

from support.paths import TINY_CONFIG
from support.videos import write_video


HEIGHT, WIDTH = 32, 48
LENGTHS = {"a.mp4": 6, "b.mkv": 9, "sub/c.mp4": 4, "sub/deeper/d.mp4": 11}  # videos of the clean corpus
SEQUENCES = {"a": 6, "b": 9, "sub__c": 4, "sub__deeper__d": 11, "shots": 5}   # and the frame folder shots/


def noise_frames(count: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8) for _ in range(count)]


def write_corpus(folder: Path) -> Path:
    """The clean corpus: four videos (one nested two folders deep), a folder of 5 PNG frames, a
    text file and a hidden file (neither read)."""
    for seed, (name, length) in enumerate(LENGTHS.items()):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        write_video(folder / name, noise_frames(length, seed))
    (folder / "shots").mkdir()
    for index, frame in enumerate(noise_frames(5, 99)):
        Image.fromarray(frame).save(folder / "shots" / f"frame{index}.png")
    (folder / "notes.txt").write_text("not a video")
    (folder / ".hidden.mp4").write_bytes(b"never read")
    return folder


def infer_args(weights: Path, input_spec: str, *overrides: str) -> list[str]:
    return ["-c", str(TINY_CONFIG), "--task", "infer", "--wts", str(weights), "--input", input_spec, *overrides]


def masks(run_folder: Path) -> dict[str, bytes]:
    """Every mask of a run folder by its path there."""
    return {str(p.relative_to(run_folder)): p.read_bytes() for p in sorted(run_folder.glob("*/*.png"))}


def run_in(cwd: Path, arguments: list[str], monkeypatch) -> int:
    cwd.mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(cwd)
    return main.main(arguments)
