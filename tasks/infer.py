"""`--task infer` (masks, metrics.json and metrics.csv under results/<name>/; with --input, under
results/<name>/<input name>/) and `--task eval` (scores only, no files): the same engine and
scoring that validation uses during training. An --input naming many videos (a folder of them, a
glob, @list.txt: datasets/corpus.py) is run by tasks/corpus.py.

Under torchrun every process predicts its share of the sequences (tasks.distributed.shard);
rank 0 merges the scores, prints the table (stdout) and writes the metrics files.
"""

import dataclasses
import logging
import os
import sys
import time
from pathlib import Path

from checkpoints.weights import load_model
from datasets import index_sequences
from datasets.corpus import is_corpus_input
from datasets.video import index_input
from inference_handlers.evaluation.protocols import (format_table, merge_summaries, protocol_for, sequence_csv_rows,
                                                     without_records)
from inference_handlers.inference import build_engine
from inference_handlers.inference.runner import run_inference
from tasks.distributed import gather_objects, is_main_process, shard, world_size
from tasks.setup import LOG_FILE_ONLY
from utils.config_live import is_live_input
from utils.errors import UserError
from utils.files import write_csv, write_json

logger = logging.getLogger(__name__)


# Inference keys that leave the masks, probabilities and scores unchanged: not part of the fingerprint.
CONSOLE_SEQUENCES = 10  # more sequences than this: the console's table shows the overall row only
OUTPUT_NEUTRAL = ("batch_size", "prefetch_frames", "write_queue", "overwrite", "report")


def outputs_fingerprint(cfg, weights_path: str) -> dict:
    """What a sequence's outputs depend on: the weights file and the model, input and inference
    sections (a re-run reuses outputs only when this is unchanged); JSON values throughout."""
    stat = os.stat(weights_path)
    model = dataclasses.asdict(cfg.model)
    del model["backbone_weights"]  # read at the start of training only
    inference = dataclasses.asdict(cfg.inference)
    for key in OUTPUT_NEUTRAL:
        del inference[key]
    window = inference.pop("live")["window"]  # of inference.live only the window mode makes a file's masks
    if window != "centered":
        inference["window"] = window  # centered: the fingerprint of the runs from before the key
    return {"weights": str(Path(weights_path).resolve()), "weights_size": stat.st_size,
            "weights_mtime_ns": stat.st_mtime_ns, "model": model, "input": dataclasses.asdict(cfg.input),
            "inference": inference}


def infer(cfg, run, weights_path: str, write_files: bool = True, input_path: str | None = None) -> dict:
    """Predict the test sequences (or the video / frame folder / videos of `input_path`) with the
    weights in `weights_path`; return the summary of all processes (protocols.summarise; for many
    videos with the counts of tasks.corpus.infer_corpus)."""
    started = time.perf_counter()
    if input_path and is_live_input(input_path) and world_size() > 1:
        raise UserError(f"--input {input_path}: a live source is read by one process; run it without torchrun "
                        f"(this run has {world_size()} processes)")
    model, _ = load_model(cfg.model, weights_path)
    model.to(run.device)
    if input_path and is_live_input(input_path):
        from tasks.live import infer_live
        return infer_live(cfg, run, model, input_path, show_progress=is_main_process())
    if input_path and is_corpus_input(input_path):
        from tasks.corpus import infer_corpus
        return infer_corpus(cfg, run, model, weights_path, input_path, outputs_fingerprint(cfg, weights_path),
                            started, write_run_report)
    sequences = index_input(input_path) if input_path else index_sequences(cfg.data, "test")
    protocol = protocol_for(cfg.inference.protocol, cfg.data.test)
    results_dir = run.results_dir if write_files else None
    summary = run_inference(build_engine(cfg, model, run.device), shard(sequences), cfg.inference,
                            protocol=protocol, results_dir=results_dir, show_progress=is_main_process(),
                            fingerprint=outputs_fingerprint(cfg, weights_path))
    summary = merge_summaries(gather_objects(summary))
    summary.update(config=cfg.name, checkpoint=str(weights_path))
    if is_main_process():
        report(summary, len(sequences), results_dir)
        if results_dir is not None and cfg.inference.report:
            write_run_report(cfg, run, weights_path, sequences, summary, input_path)
    return summary


def write_run_report(cfg, run, weights_path: str, sequences, summary: dict, input_path: str | None = None,
                     failures: list[dict] | None = None) -> None:
    """report.html and per_frame.json in the run's results folder (inference_handlers/evaluation/report.py);
    the header names the `--input` it was run on, if any, and the videos that failed (`failures`,
    as failures.json lists them)."""
    start = time.perf_counter()
    from inference_handlers.evaluation.report import inference_frames, write_report
    results_dir = run.results_dir
    config_file = results_dir / "config.yaml"
    header = {"source": "--task infer", "checkpoint": str(weights_path), "config": cfg.name,
              "versions": run.versions,
              "config_text": config_file.read_text() if config_file.is_file() else ""}
    if input_path is not None:
        header["input"] = str(input_path)
    if failures is not None:
        header["failures"] = failures
    frames = inference_frames(sequences, results_dir, cfg.inference.mask_names, summary)
    path = write_report(results_dir, header, frames, summary)
    logger.info("report written in %.1f s: %s", time.perf_counter() - start, path)


def report(summary: dict, num_sequences: int, results_dir: Path | None) -> None:
    """The table on stdout and in the log file; metrics.json and metrics.csv when there is something
    to score."""
    where = f"; outputs in {results_dir}" if results_dir is not None else ""
    if summary["score"] is None:
        logger.info("%d sequences predicted, no annotated frames to score%s", num_sequences, where)
        return
    sys.stdout.write(format_table(summary, max_sequences=CONSOLE_SEQUENCES) + "\n")  # the answer
    sys.stdout.flush()
    logger.info("scores:\n%s", format_table(summary), extra=LOG_FILE_ONLY)
    if results_dir is not None:
        write_json(results_dir / "metrics.json", without_records(summary))
        write_csv(results_dir / "metrics.csv", sequence_csv_rows(summary))
    logger.info("%d sequences, %d scored frames (%s): %s %.4f, mean J %.4f%s", num_sequences,
                summary["num_frames"], summary["frames"], summary["score_name"], summary["score"],
                summary["mean_J"], where)
