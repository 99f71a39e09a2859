"""Evaluation measures.

J (region similarity, DAVIS): |M n G| / |M u G| on boolean masks; 1 when both are empty.
A sequence's J is the mean over its annotated frames; the summary is the mean over sequences.
"""

import numpy as np


def region_similarity(prediction: np.ndarray, ground_truth: np.ndarray) -> float:
    prediction, ground_truth = prediction.astype(bool), ground_truth.astype(bool)
    union = np.logical_or(prediction, ground_truth).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(prediction, ground_truth).sum() / union)


def summarise(per_sequence_j: dict[str, list[float]]) -> dict:
    """{"mean_J": mean over sequences, "sequences": {name: mean over frames}, "num_frames": n}."""
    sequence_means = {name: float(np.mean(values)) for name, values in per_sequence_j.items() if values}
    mean_j = float(np.mean(list(sequence_means.values()))) if sequence_means else None
    return {"mean_J": mean_j, "sequences": sequence_means,
            "num_frames": int(sum(len(values) for values in per_sequence_j.values()))}
