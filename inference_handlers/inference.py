"""Run the engine over sequences: masks, metrics, progress. Used by validation and `--task infer`."""

import logging
from pathlib import Path

import numpy as np
from tqdm import tqdm

from datasets.io import read_mask
from datasets.transforms import resize_labels
from inference_handlers.metrics import region_similarity, summarise
from inference_handlers.writers import write_mask

logger = logging.getLogger(__name__)


def run_inference(engine, sequences, results_dir: Path | None = None, show_progress: bool = True,
                  mask_names: str = "frame_name") -> dict:
    """Predict every sequence; write PNGs under results_dir (if given) named by `mask_names`
    (see Sequence.output_name); return the J summary."""
    engine.model.eval()
    per_sequence_j = {}
    total_frames = sum(sequence.num_frames for sequence in sequences)
    with tqdm(total=total_frames, desc="infer", unit="frame", disable=not show_progress) as progress:
        for sequence in sequences:
            per_sequence_j[sequence.name] = []
            for prediction in engine.predict(sequence):
                labels = prediction.labels()
                if results_dir is not None:
                    write_mask(results_dir, sequence.name,
                               sequence.output_name(prediction.index, mask_names), labels)
                if prediction.index in sequence.mask_paths:
                    per_sequence_j[sequence.name].append(
                        frame_j(labels, sequence.mask_paths[prediction.index]))
                progress.update(1)
            if per_sequence_j[sequence.name]:
                progress.set_postfix(sequence=sequence.name, J=f"{np.mean(per_sequence_j[sequence.name]):.3f}")
    return summarise(per_sequence_j)


def frame_j(labels: np.ndarray, mask_path: Path) -> float:
    """J of a label map against a ground-truth mask (any non-zero id is foreground)."""
    ground_truth = read_mask(mask_path) != 0
    return region_similarity(resize_labels(labels, ground_truth.shape), ground_truth)
