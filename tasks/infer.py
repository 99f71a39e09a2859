"""`--task infer` (masks, metrics.json and metrics.csv under results/<name>/) and `--task eval`
(scores only, no files): the same engine and scoring that validation uses during training.

Under torchrun every process predicts its share of the sequences (tasks.distributed.shard);
rank 0 merges the scores, logs the table and writes the metrics files.
"""

import dataclasses
import logging
import os
import time
from pathlib import Path

from datasets import index_sequences
from datasets.video import index_input
from inference_handlers import build_engine
from inference_handlers.inference import run_inference
from inference_handlers.protocols import (format_table, merge_summaries, protocol_for, sequence_csv_rows,
                                          without_records)
from inference_handlers.writers import write_csv, write_json
from network.weights import load_model
from tasks.distributed import gather_objects, is_main_process, shard

logger = logging.getLogger(__name__)


def outputs_fingerprint(cfg, weights_path: str) -> dict:
    """What a sequence's outputs depend on: the weights file and the model, input and engine
    settings (a re-run reuses outputs only when this is unchanged)."""
    stat = os.stat(weights_path)
    model = {key: value for key, value in dataclasses.asdict(cfg.model).items() if key != "backbone_weights"}
    engine = {key: getattr(cfg.inference, key) for key in ("engine", "clip_overlap", "dense", "tail")}
    return {"weights": str(Path(weights_path).resolve()), "weights_size": stat.st_size,
            "weights_mtime_ns": stat.st_mtime_ns, "model": model, "input": dataclasses.asdict(cfg.input),
            "engine": engine, "precision": cfg.inference.precision,
            "memory_format": "channels_last" if cfg.inference.channels_last else "contiguous",
            "compile": cfg.inference.compile}


def infer(cfg, run, weights_path: str, write_files: bool = True, input_path: str | None = None) -> dict:
    """Predict the test sequences (or the video / frame folder `input_path`) with the weights in
    `weights_path`; return the summary of all processes (protocols.summarise)."""
    model, _ = load_model(cfg.model, weights_path)
    model.to(run.device)
    sequences = index_input(input_path) if input_path else index_sequences(cfg.data, "test")
    protocol = protocol_for(cfg.inference.protocol, cfg.data.test)
    results_dir = run.results_dir if write_files else None
    summary = run_inference(build_engine(cfg, model, run.device), shard(sequences), results_dir=results_dir,
                            show_progress=is_main_process(), mask_names=cfg.inference.mask_names,
                            protocol=protocol, frames=cfg.inference.eval_frames,
                            save_probs=cfg.inference.save_probs and write_files,
                            overlay=cfg.inference.overlay and write_files,
                            overwrite=cfg.inference.overwrite, fingerprint=outputs_fingerprint(cfg, weights_path),
                            write_queue=cfg.inference.write_queue)
    summary = merge_summaries(gather_objects(summary))
    summary.update(config=cfg.name, checkpoint=str(weights_path))
    if is_main_process():
        report(summary, len(sequences), results_dir)
        if results_dir is not None and cfg.inference.report:
            write_run_report(cfg, weights_path, sequences, results_dir, summary)
    return summary


def write_run_report(cfg, weights_path: str, sequences, results_dir: Path, summary: dict) -> None:
    """results/<name>/report.html and per_frame.json (inference_handlers/report.py)."""
    start = time.perf_counter()
    from inference_handlers.report import inference_frames, write_report
    from tasks.setup import environment_versions
    config_file = results_dir / "config.yaml"
    header = {"source": "--task infer", "checkpoint": str(weights_path), "config": cfg.name,
              "versions": environment_versions(),
              "config_text": config_file.read_text() if config_file.is_file() else ""}
    frames = inference_frames(sequences, results_dir, cfg.inference.mask_names, summary)
    path = write_report(results_dir, header, frames, summary)
    logger.info("report written in %.1f s: %s", time.perf_counter() - start, path)


def report(summary: dict, num_sequences: int, results_dir: Path | None) -> None:
    """Log the table; write metrics.json and metrics.csv when there is something to score."""
    where = f"; outputs in {results_dir}" if results_dir is not None else ""
    if summary["score"] is None:
        logger.info("%d sequences predicted, no annotated frames to score%s", num_sequences, where)
        return
    logger.info("scores:\n%s", format_table(summary))
    if results_dir is not None:
        write_json(results_dir / "metrics.json", without_records(summary))
        write_csv(results_dir / "metrics.csv", sequence_csv_rows(summary))
    logger.info("%d sequences, %d scored frames (%s): %s %.4f, mean J %.4f%s", num_sequences,
                summary["num_frames"], summary["frames"], summary["score_name"], summary["score"],
                summary["mean_J"], where)
