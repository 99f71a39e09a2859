"""Run the engine over sequences: masks, metrics, progress. Used by validation and `--task infer`."""

import logging
from pathlib import Path

from tqdm import tqdm

from datasets.io import read_mask
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
                    ground_truth = read_mask(sequence.mask_paths[prediction.index]) != 0
                    per_sequence_j[sequence.name].append(region_similarity(labels, ground_truth))
                progress.update(1)
            if per_sequence_j[sequence.name]:
                progress.set_postfix(sequence=sequence.name,
                                     J=f"{sum(per_sequence_j[sequence.name]) / len(per_sequence_j[sequence.name]):.3f}")
    return summarise(per_sequence_j)
