"""Evaluation protocols: the measures a test set is scored with and how per-frame values become
the summary. `--task infer/eval`, validation and `python -m inference_handlers.evaluate` all go
through `score_frame` -> `add_frame` -> `summarise`.

- davis2016: J and F per frame; per sequence Mean, Recall, Decay; over sequences the mean of each;
  J&F = (J Mean + F Mean) / 2 (headline).
- fbms: J (headline) and F over the annotated frames only, all objects merged; means over
  sequences, and J over all annotated frames pooled.
- saliency: MAE, max F_beta (beta^2 = 0.3, headline) and S-measure over all annotated frames
  (pysodmetrics), the original's pooled beta = 1 F, and J of the mask.

A *record* holds one sequence's scores as plain lists (JSON-able, picklable): "frames" (names of
the scored frames), one list per per-frame measure, and for saliency the sums over its frames of
the F curve and of the grey-level histograms. Summaries keep the records, so the summaries of
disjoint sets of sequences (other processes, an earlier interrupted run) merge exactly.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from datasets.transforms import resize_image, resize_labels
from inference_handlers.evaluation.metrics import (boundary_f, max_f_from_histograms, region_similarity,
                                                   saliency_frame, statistics)
from utils.registry import pick

FRAME_SETS = {  # the annotated frames that count, from the sorted annotated frames
    "all": lambda annotated: annotated,  # davis2017-evaluation
    "skip_first_last": lambda annotated: annotated[1:-1],  # DAVIS-2016 Matlab toolkit, VSOD toolboxes
}
DATASET_PROTOCOLS = {"davis": "davis2016", "synthetic": "davis2016", "fbms": "fbms", "visal": "saliency"}


def _boundary_values(labels, probability, ground_truth) -> dict:
    return {"F": boundary_f(labels, ground_truth)}


def _saliency_values(labels, probability, ground_truth) -> dict:
    return saliency_frame(probability, ground_truth)


def _region_boundary_row(record: dict) -> dict:
    """Mean, recall and decay of J and F."""
    row = {}
    for measure in ("J", "F"):
        row.update({f"{measure}_{key}": value for key, value in statistics(record[measure]).items()})
    return row


def _saliency_row(record: dict) -> dict:
    count = len(record["frames"])
    return {"J_mean": float(np.mean(record["J"])), "MAE": float(np.mean(record["MAE"])),
            "maxF": float(np.max(np.asarray(record["f_curve"]) / count)), "S": float(np.mean(record["S"]))}


def _mean_over_sequences(rows: dict, key: str) -> float:
    return float(np.mean([row[key] for row in rows.values()]))


def _davis_overall(records: dict, rows: dict) -> dict:
    means = {key: _mean_over_sequences(rows, key) for key in next(iter(rows.values())) if key != "frames"}
    return {"J&F": (means["J_mean"] + means["F_mean"]) / 2, **means}


def _fbms_overall(records: dict, rows: dict) -> dict:
    j_mean, f_mean = _mean_over_sequences(rows, "J_mean"), _mean_over_sequences(rows, "F_mean")
    return {"J": j_mean, "F": f_mean, "J&F": (j_mean + f_mean) / 2,
            "J_frames": float(np.mean([j for record in records.values() for j in record["J"]]))}


def _saliency_overall(records: dict, rows: dict) -> dict:
    """Means over all frames pooled (pysodmetrics' get_results over every frame)."""
    frames = [record for record in records.values() if record["frames"]]
    count = sum(len(record["frames"]) for record in frames)
    curve = np.sum([record["f_curve"] for record in frames], axis=0) / count
    return {"maxF": float(curve.max()),
            "MAE": float(np.sum([np.sum(r["MAE"]) for r in frames]) / count),
            "S": float(np.sum([np.sum(r["S"]) for r in frames]) / count),
            "F_pooled_beta1": max_f_from_histograms(np.sum([r["fg_hist"] for r in frames], axis=0),
                                                    np.sum([r["bg_hist"] for r in frames], axis=0)),
            "J_mean": _mean_over_sequences(rows, "J_mean")}


@dataclass(frozen=True)
class Protocol:
    """What differs between protocols; the functions that use it never ask for a protocol's name."""
    score_name: str                # key of the headline number in summary["metrics"]
    frame_measures: tuple          # per-frame values kept in a record
    frame_values: Callable         # (labels, probability, ground_truth) -> a frame's values besides J
    sequence_row: Callable         # record -> a sequence's values (summary["sequences"], table columns)
    overall: Callable              # (records, rows of the scored sequences) -> summary["metrics"]
    sequence_score: Callable       # row -> the sequence's headline (report: ranking, comparison)
    bar_measures: tuple            # row values the report draws as bars per sequence
    sums: tuple = ()               # per-frame arrays summed over a record's frames
    needs_probabilities: bool = False


PROTOCOLS = {
    "davis2016": Protocol(score_name="J&F", frame_measures=("J", "F"), frame_values=_boundary_values,
                          sequence_row=_region_boundary_row, overall=_davis_overall,
                          sequence_score=lambda row: (row["J_mean"] + row["F_mean"]) / 2,
                          bar_measures=("J_mean", "F_mean")),
    "fbms": Protocol(score_name="J", frame_measures=("J", "F"), frame_values=_boundary_values,
                     sequence_row=_region_boundary_row, overall=_fbms_overall,
                     sequence_score=lambda row: row["J_mean"], bar_measures=("J_mean", "F_mean")),
    "saliency": Protocol(score_name="maxF", frame_measures=("J", "MAE", "S"), frame_values=_saliency_values,
                         sequence_row=_saliency_row, overall=_saliency_overall,
                         sequence_score=lambda row: row["maxF"], bar_measures=("MAE", "maxF", "S"),
                         sums=("f_curve", "fg_hist", "bg_hist"), needs_probabilities=True),
}

DEFINITIONS = {
    "J": "region similarity |M n G| / |M u G| (1 if both empty), mean over sequences",
    "J_mean": "J: mean over sequences of the per-sequence mean",
    "J_recall": "J: mean over sequences of the fraction of frames with J > 0.5",
    "J_decay": "J: mean over sequences of (mean of the first quarter - mean of the last quarter)",
    "F": "DAVIS boundary F (disk radius ceil(0.008 * diagonal)), mean over sequences",
    "F_mean": "F: mean over sequences of the per-sequence mean",
    "F_recall": "F: mean over sequences of the fraction of frames with F > 0.5",
    "F_decay": "F: mean over sequences of (mean of the first quarter - mean of the last quarter)",
    "J&F": "(J_mean + F_mean) / 2",
    "J_frames": "J: mean over all annotated frames of all sequences",
    "MAE": "mean absolute error of the min-max normalised map, mean over all frames (pysodmetrics)",
    "maxF": "max over 256 thresholds of the mean over all frames of F_beta, beta^2 = 0.3 (pysodmetrics)",
    "S": "S-measure, alpha = 0.5, mean over all frames (pysodmetrics)",
    "F_pooled_beta1": "original 3DC-Seg F: pixels of all frames pooled, beta = 1, max over 256 thresholds",
}


def protocol_for(protocol: str, test_dataset: str) -> str:
    """The configured protocol, or for "auto" the one of the test set's dataset."""
    return DATASET_PROTOCOLS.get(test_dataset, "davis2016") if protocol == "auto" else protocol


def scored_indices(annotated: list[int], frames: str) -> list[int]:
    """The annotated frames that count: all, or all but the first and the last."""
    return pick(FRAME_SETS, frames, "frame set")(sorted(annotated))


def score_frame(protocol: str, labels: np.ndarray, probability: np.ndarray | None,
                ground_truth: np.ndarray) -> dict:
    """Per-frame values of a protocol. labels: uint8 (h, w) mask (non-zero = foreground);
    probability: uint8 (h, w) grey map (saliency only); ground_truth: (H, W) mask (non-zero =
    foreground). A prediction of another size is resized to the ground truth's first (labels
    nearest, grey map bilinear)."""
    shape = ground_truth.shape
    labels = resize_labels(np.asarray(labels, dtype=np.uint8), shape)
    probability = None if probability is None else resize_image(np.asarray(probability, dtype=np.uint8), shape)
    return {"J": region_similarity(labels, ground_truth),
            **pick(PROTOCOLS, protocol, "evaluation protocol").frame_values(labels, probability, ground_truth)}


def new_record(protocol: str) -> dict:
    spec = pick(PROTOCOLS, protocol, "evaluation protocol")
    return {"frames": [], **{key: [] for key in spec.frame_measures}}


def add_frame(record: dict, protocol: str, frame_name: str, values: dict) -> None:
    spec = PROTOCOLS[protocol]
    record["frames"].append(frame_name)
    for key in spec.frame_measures:
        record[key].append(values[key])
    for key in spec.sums:
        total = record.get(key)
        record[key] = list(values[key]) if total is None else (np.add(total, values[key])).tolist()


def summarise(records: dict, protocol: str, frames: str, ground_truth=()) -> dict:
    """The summary of per-sequence records {name: record}.

    {"protocol", "frames", "ground_truth": [sources read], "score_name", "score" (headline or None),
    "mean_J" (or None), "num_frames" (scored frames), "num_sequences", "metrics": {key: value},
    "sequences": {name: per-sequence values} (scored sequences only), "definitions",
    "records"}.
    """
    spec = pick(PROTOCOLS, protocol, "evaluation protocol")
    rows = {name: {"frames": len(record["frames"]), **spec.sequence_row(record)}
            for name, record in records.items() if record["frames"]}
    metrics = spec.overall(records, rows) if rows else {}
    return {"protocol": protocol, "frames": frames, "ground_truth": sorted(set(ground_truth)),
            "score_name": spec.score_name, "score": metrics.get(spec.score_name),
            "mean_J": metrics.get("J_mean", metrics.get("J")),
            "num_frames": sum(row["frames"] for row in rows.values()), "num_sequences": len(records),
            "metrics": metrics, "sequences": rows,
            "definitions": {key: DEFINITIONS[key] for key in metrics}, "records": records}


def merge_summaries(summaries: list[dict]) -> dict:
    """One summary from the summaries of disjoint sets of sequences (e.g. one per process),
    recomputed from their records: equal to the summary of all sequences at once."""
    first = summaries[0]
    records, ground_truth = {}, set()
    for summary in summaries:
        if (summary["protocol"], summary["frames"]) != (first["protocol"], first["frames"]):
            raise ValueError("cannot merge summaries of different protocols or frame sets")
        overlap = records.keys() & summary["records"].keys()
        if overlap:
            raise ValueError(f"sequences scored twice: {', '.join(sorted(overlap))}")
        records.update(summary["records"])
        ground_truth.update(summary["ground_truth"])
    return summarise(records, first["protocol"], first["frames"], ground_truth)


def without_records(summary: dict) -> dict:
    """The summary as written to metrics.json (per-frame records left out)."""
    return {key: value for key, value in summary.items() if key != "records"}


def format_table(summary: dict, max_sequences: int | None = None) -> str:
    """The summary as a text table: one row per sequence, then the overall row; with more than
    `max_sequences` sequences, one line counting them instead of their rows."""
    lines = [f"protocol {summary['protocol']}, frames: {summary['frames']}, "
             f"ground truth read: {', '.join(summary['ground_truth']) or 'none'}"]
    if not summary["sequences"]:
        lines.append("no annotated frames: nothing to score")
        return "\n".join(lines)
    columns = [key for key in next(iter(summary["sequences"].values())) if key != "frames"]
    width = max(8, *(len(name) for name in summary["sequences"]))
    lines.append(f"{'sequence':<{width}} {'frames':>6} " + " ".join(f"{c:>9}" for c in columns))
    if max_sequences is not None and len(summary["sequences"]) > max_sequences:
        lines[-1] = f"{len(summary['sequences'])} sequences (a row each in the run's log file)"
    else:
        for name, row in summary["sequences"].items():
            lines.append(f"{name:<{width}} {row['frames']:>6} " + " ".join(f"{row[c]:>9.4f}" for c in columns))
    lines.append("overall: " + ", ".join(f"{key} {value:.4f}" for key, value in summary["metrics"].items()))
    return "\n".join(lines)


def sequence_csv_rows(summary: dict) -> list[list]:
    """Header and one row per scored sequence."""
    rows = list(summary["sequences"].items())
    if not rows:
        return [["sequence", "frames"]]
    columns = list(rows[0][1])
    return [["sequence", *columns]] + [[name, *(row[c] for c in columns)] for name, row in rows]
