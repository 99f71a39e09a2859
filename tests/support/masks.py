"""Masks written by a run: read them back, and their mean J against a ground truth, by hand."""

from pathlib import Path

import numpy as np
from PIL import Image


def masks_in(folder: Path) -> dict:
    """{file stem: mask array} of the PNG masks in a folder, read with PIL."""
    masks = {}
    for path in sorted(folder.glob("*.png")):
        with Image.open(path) as image:
            masks[path.stem] = np.asarray(image)
    return masks


def mean_j(results: Path, ground_truth: dict) -> float:
    """Mean J of the masks written to results/<sequence>/<name>.png, by hand: per frame
    |M n G| / |M u G| (1 if both are empty) against ground_truth {sequence: {name: mask}},
    averaged over a sequence's frames, then over the sequences."""
    means = []
    for sequence, frames in ground_truth.items():
        values = []
        for name, truth in frames.items():
            with Image.open(results / sequence / f"{name}.png") as image:
                mask, truth = np.asarray(image) != 0, np.asarray(truth) != 0
            union = np.count_nonzero(mask | truth)
            values.append(np.count_nonzero(mask & truth) / union if union else 1.0)
        means.append(np.mean(values))
    return float(np.mean(means))
