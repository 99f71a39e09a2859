"""Result files: palette PNG masks and the metrics summary."""

import json
from pathlib import Path

import numpy as np

from datasets.io import atomic_write, write_palette_png


def write_mask(results_dir: Path, sequence_name: str, frame_name: str, labels: np.ndarray) -> None:
    """results_dir/<sequence>/<frame>.png, values 0 = background, 1 = foreground."""
    write_palette_png(results_dir / sequence_name / f"{frame_name}.png", labels)


def write_metrics(path: Path, summary: dict) -> None:
    text = json.dumps(summary, indent=2)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text + "\n"))
