"""Run the engine over sequences: files, scores, progress. Used by validation and `--task infer`.

Files under results_dir (when given):
    <sequence>/<frame>.png             palette mask, 0 = background, 1 = foreground (always)
    probs/<sequence>/<frame>.png       8-bit foreground probability (save_probs; see writers.py)
    overlays/<sequence>.mp4            frames with the mask tinted and outlined (overlay)
    <sequence>/.complete.json          written last: the sequence's scores, the settings that made
                                       them and the files written (COMPLETE_MARKER)

Masks, probabilities and scores are made by a background writer thread while the engine
predicts the next frames (`write_queue` predictions ahead; background.consume_in_background),
several frames at once by a pool of threads (background.ordered_map);
its exception is raised in the calling thread, and a sequence's files are all written before its
marker. A sequence whose marker exists, was made with the same settings (`fingerprint`, protocol, frame
set, outputs) and whose files all exist is complete: a re-run takes its scores from the marker
and does not predict it again, unless `overwrite`. Every file is written atomically, so a file
that exists is whole; the temp files that a killed run's writes left behind are deleted when their
sequence is predicted again.

An `--input` run (a video, a frame folder, or many of them: datasets/corpus.py) is a run folder
of its own inside the test set's: results/<name>/<input name>/ (input_results_dir), with the
same layout.
"""

import contextlib
import json
import logging
from pathlib import Path

import numpy as np
from tqdm import tqdm

from datasets.corpus import input_name
from datasets.io import OVERLAYS_DIR, PROBS_DIR
from datasets.video import frame_rate_of
from inference_handlers.evaluation.protocols import (PROTOCOLS, add_frame, new_record, score_frame, scored_indices,
                                                     summarise)
from inference_handlers.inference.background import consume_in_background, host_workers, ordered_map
from inference_handlers.inference.writers import overlay_video, write_mask, write_probability
from utils.config import InferenceConfig
from utils.errors import UserError
from utils.files import remove_temp_files, write_json

logger = logging.getLogger(__name__)

COMPLETE_MARKER = ".complete.json"


def ground_truth_source(sequence) -> str:
    """The sequence's `ground_truth` description, else the folder its masks come from."""
    return sequence.ground_truth or str(next(iter(sequence.mask_paths.values())).parent.parent)


def input_results_dir(results_dir: Path, input_path) -> Path:
    """The run folder of `--input input_path` beside the test set's run in `results_dir`:
    results_dir/<input name>/ (datasets.video.input_name), so that neither run replaces the other's
    report, metrics, per-frame data or config. Refused when that folder belongs to the test set's
    run: one of its sequences (it holds a COMPLETE_MARKER), or its probs/ or overlays/ folder."""
    name = input_name(input_path)
    folder = results_dir / name
    held = {PROBS_DIR: "the probability maps", OVERLAYS_DIR: "the overlay videos"}.get(name)
    if held is None and (folder / COMPLETE_MARKER).is_file():
        held = (f"the masks of a sequence '{name}' (of the test set, or of an --input run of an earlier version, "
                f"which may be deleted)")
    if held is not None:
        raise UserError(f"--input {input_path}: its outputs would go to {folder}, which holds {held} of "
                        f"{results_dir}; rename the input or choose another run name (name=...)")
    return folder


def run_inference(engine, sequences, inference: InferenceConfig, *, protocol: str = "davis2016",
                  results_dir: Path | None = None, show_progress: bool = True,
                  fingerprint: dict | None = None, frame_hook=None) -> dict:
    """Predict every sequence and score its annotated frames with `protocol` (inference.eval_frames:
    all | skip_first_last); with results_dir, write masks named by inference.mask_names
    (Sequence.output_name), and probability PNGs and overlay videos if asked (inference.save_probs,
    inference.overlay); return the summary (protocols.summarise). inference.write_queue:
    predictions handed to the background writer ahead of it (0 = write and score in the calling
    thread); inference.overwrite: predict complete sequences again.

    fingerprint: what made the outputs (weights, settings), of JSON values (lists, not tuples) so
    that a marker read back compares equal; a complete sequence is reused only when it matches.
    frame_hook: called with (sequence, frame index, uint8 label map) for every frame predicted, in
    frame order (not for sequences taken from a marker).
    """
    engine.model.eval()
    settings = output_settings(inference, protocol, fingerprint, results_dir is not None)
    check_output_names([sequence.name for sequence in sequences], settings)
    records, reused = {}, 0
    total_frames = sum(sequence.num_frames for sequence in sequences)
    with tqdm(total=total_frames, desc="infer", unit="frame", disable=not show_progress) as progress:
        for sequence in sequences:
            record, complete = infer_sequence(engine, sequence, inference, settings, results_dir, progress,
                                              frame_hook)
            reused += complete
            records[sequence.name] = record
            if record.get("J"):
                progress.set_postfix(sequence=sequence.name, J=f"{np.mean(record['J']):.3f}")
    if reused:
        logger.info("%d of %d sequences were complete in %s and were not predicted again "
                    "(inference.overwrite=true redoes them)", reused, len(sequences), results_dir)
    truth = [ground_truth_source(s) for s in sequences if s.mask_paths]
    return summarise(records, protocol, inference.eval_frames, truth)


def output_settings(inference: InferenceConfig, protocol: str, fingerprint: dict | None, writing: bool) -> dict:
    """What a sequence's outputs depend on, as its COMPLETE_MARKER stores it."""
    return {"fingerprint": fingerprint, "protocol": protocol, "frames": inference.eval_frames,
            "mask_names": inference.mask_names, "save_probs": inference.save_probs and writing,
            "overlay": inference.overlay and writing}


def check_output_names(names, settings: dict) -> None:
    """Refuse sequences named like the output folders of save_probs / overlay when they are written."""
    clashes = set(names) & {PROBS_DIR, OVERLAYS_DIR}
    if clashes and (settings["save_probs"] or settings["overlay"]):
        raise UserError(f"a sequence is named {', '.join(sorted(clashes))}, like an output folder of "
                        f"inference.save_probs / inference.overlay; rename it or switch those off")


def infer_sequence(engine, sequence, inference: InferenceConfig, settings: dict, results_dir: Path | None,
                   progress, frame_hook=None) -> tuple[dict, bool]:
    """(record, reused): the record of a complete earlier run with the same `settings`
    (completed_record; unless inference.overwrite), else of predicting the sequence now;
    `progress` is updated by the sequence's frames either way."""
    if results_dir is not None and not inference.overwrite:
        record = completed_record(results_dir, sequence, settings)
        if record is not None:
            progress.update(sequence.num_frames)
            return record, True
    return predict_sequence(engine, sequence, results_dir, settings, progress, inference.write_queue,
                            frame_hook), False


def predict_sequence(engine, sequence, results_dir: Path | None, settings: dict, progress,
                     write_queue: int = 0, frame_hook=None) -> dict:
    """Predict, write and score one sequence (writing in a background thread when write_queue
    > 0), calling frame_hook(sequence, index, labels) for each frame; returns its record."""
    protocol = settings["protocol"]
    marker = None if results_dir is None else results_dir / sequence.name / COMPLETE_MARKER
    previous = read_marker(marker) if marker is not None else None
    if previous is not None:
        marker.unlink()  # from now on the sequence is incomplete until the new marker is written
    if results_dir is not None:
        _remove_temp_files(results_dir, sequence.name)
    scored = set(scored_indices(sequence.annotated_indices, settings["frames"]))
    record, written = new_record(protocol), []
    overlay_path = None
    if results_dir is not None and settings["overlay"]:
        overlay_path = results_dir / OVERLAYS_DIR / f"{sequence.name}.mp4"

    def write_and_score_frame(prediction):
        """Write one prediction's mask and probability map and score it (run by a pool thread);
        returns (prediction, mask name, files written, scores or None)."""
        labels = prediction.labels()
        name = sequence.output_name(prediction.index, settings["mask_names"])
        probability, files, values = None, [], None
        if settings["save_probs"] or (prediction.index in scored and PROTOCOLS[protocol].needs_probabilities):
            probability = prediction.foreground_probability()
        if results_dir is not None:
            files.append(write_mask(results_dir, sequence.name, name, labels))
            if settings["save_probs"]:
                files.append(results_dir / PROBS_DIR / sequence.name / f"{name}.png")
                write_probability(files[-1], probability)
        if prediction.index in scored:
            ground_truth = sequence.read_mask(prediction.index, prediction.shape) != 0
            values = score_frame(protocol, labels, probability, ground_truth)
        return prediction, name, files, values

    def write_and_score(predictions) -> None:
        """Every frame written and scored (several at once by a pool of threads when writing in
        the background), then, in frame order, recorded and added to the overlay video if asked."""
        workers = host_workers() if write_queue > 0 else 1
        overlay = overlay_video(overlay_path, frame_rate_of(sequence)) if overlay_path else contextlib.nullcontext()
        with overlay as video:
            for prediction, name, files, values in ordered_map(write_and_score_frame, predictions, workers):
                written.extend(files)
                if values is not None:
                    add_frame(record, protocol, name, values)
                progress.update(1)
                if frame_hook is not None:
                    frame_hook(sequence, prediction.index, prediction.labels())
                if video is not None:
                    video.add(prediction.frame, prediction.labels())
                engine.release(prediction)  # its probabilities' memory is reused for a later frame
        if overlay_path is not None:
            written.append(overlay_path)

    with contextlib.closing(engine.predict(sequence, with_frames=overlay_path is not None)) as predictions:
        consume_in_background(write_and_score, predictions, write_queue, name="result-writer")
    if marker is not None:
        _remove_stale_files(results_dir, previous, written)
        write_json(marker, {**settings, "num_frames": sequence.num_frames, "record": record,
                            "files": [str(path.relative_to(results_dir)) for path in written]})
    return record


def read_marker(marker: Path) -> dict | None:
    if not marker.is_file():
        return None
    try:
        return json.loads(marker.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def completed_record(results_dir: Path, sequence, settings: dict) -> dict | None:
    """The record stored by a complete earlier run with the same settings, else None."""
    stored = read_marker(results_dir / sequence.name / COMPLETE_MARKER)
    if stored is None or stored.get("num_frames") != sequence.num_frames:
        return None
    if any(stored.get(key) != value for key, value in settings.items()):
        return None
    if not all((results_dir / name).is_file() for name in stored["files"]):
        return None
    return stored["record"]


def _remove_temp_files(results_dir: Path, sequence_name: str) -> None:
    """Delete the temp files that a run killed while writing this sequence's outputs left behind
    (the overlay folder is shared by the sequences: only this one's)."""
    remove_temp_files(results_dir / sequence_name)
    remove_temp_files(results_dir / PROBS_DIR / sequence_name)
    remove_temp_files(results_dir / OVERLAYS_DIR, f"{sequence_name}.mp4")


def _remove_stale_files(results_dir: Path, previous: dict | None, written: list[Path]) -> None:
    """Delete files of an earlier run of this sequence that this run did not write again."""
    if previous is None:
        return
    kept = {str(path.relative_to(results_dir)) for path in written}
    for name in previous.get("files", []):
        if name not in kept and (results_dir / name).resolve().is_relative_to(results_dir.resolve()):
            (results_dir / name).unlink(missing_ok=True)  # a marker naming a file elsewhere is ignored
