"""Result files: palette PNG masks and JSON summaries (metrics, benchmarks)."""

import json
from pathlib import Path

import numpy as np

from datasets.io import write_palette_png
from utils.files import atomic_write_text


def write_mask(results_dir: Path, sequence_name: str, frame_name: str, labels: np.ndarray) -> None:
    """results_dir/<sequence>/<frame>.png, values 0 = background, 1 = foreground."""
    write_palette_png(results_dir / sequence_name / f"{frame_name}.png", labels)


def write_json(path: Path, summary: dict) -> None:
    atomic_write_text(path, json.dumps(summary, indent=2) + "\n")
