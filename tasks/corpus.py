"""`--task infer --input` with many videos (datasets/corpus.py): one model and one engine for the
whole run, the videos spread over the processes of a torchrun job by length, a failing video
logged and left out while the run goes on, and a rerun skipping the videos already complete.

Rank 0 lists the corpus and estimates each video's frames from its header
(datasets.corpus.estimate_frames; a video whose .complete.json exists counts one frame) and
every rank receives that list; the videos go to the ranks longest first, each to the least-loaded
rank (tasks.distributed.balanced_shares), and each rank predicts and writes only its own. The
ranks wait for each other through the process group's store (corpus_progress.JobProgress), then
rank 0 writes failures.json, the report and the summary.

In the run folder results/<name>/<input name>/, besides every sequence's outputs
(inference_handlers.inference.runner):
    failures.json   {"input", "videos", "failed", "failures": [{"path", "sequence", "reason"}]}:
                    the videos that failed in this run; written (atomically) at the end of every
                    run, with an empty list when none failed
A video fails when it cannot be read: missing, empty, not a video, not decodable, without a frame,
ending before the frame count its header gives, or a frame image that does not read; or when it
does not fit in the device's memory. Its masks written before the failure stay, without
.complete.json (it is predicted again by the next run). `infer_corpus`'s summary counts the
failures ("failed_videos"); main.py then exits with 3.
"""

import logging
import sys
import time
from pathlib import Path

import av
import torch

from datasets.corpus import estimate_frames, index_entry, list_corpus
from datasets.io import DataFileError
from inference_handlers.evaluation.protocols import protocol_for, summarise
from inference_handlers.inference import build_engine
from inference_handlers.inference.runner import COMPLETE_MARKER, infer_sequence, output_settings
from tasks.corpus_progress import JobProgress, wait_for_rank_0
from tasks.distributed import (balanced_shares, broadcast_object, gather_objects, is_main_process, rank,
                               shard_by_cost, world_size)
from tasks.setup import LOG_FILE_ONLY
from utils.errors import UserError
from utils.files import write_json

logger = logging.getLogger(__name__)

FAILURES_NAME = "failures.json"
LIKELY_COMPLETE_FRAMES = 1  # the length counted for spreading a video whose marker exists
# What makes one video fail without stopping the run: input that does not read (DataFileError; an
# av error that escapes as such) and a video too large for the device's memory. A file that cannot
# be written (utils.files: a UserError) stops the run, as it would stop any other video.
VIDEO_FAILURES = (DataFileError, av.FFmpegError, torch.OutOfMemoryError)


def shared_listing(input_path: str, results_dir: Path, overwrite: bool):
    """(corpus, per-entry cost) listed and estimated by rank 0, the same on every rank; a UserError
    of the listing is raised on every rank. Unless `overwrite`, a video whose marker exists costs
    LIKELY_COMPLETE_FRAMES (its rank checks that it is complete)."""
    listing = None
    if is_main_process():
        try:
            corpus = list_corpus(input_path)
            corpus.entries = estimate_frames(corpus.entries)
            costs = [LIKELY_COMPLETE_FRAMES if not overwrite and (results_dir / entry.name / COMPLETE_MARKER).is_file()
                     else entry.frames for entry in corpus.entries]
            listing = (corpus, costs)
        except UserError as error:
            listing = str(error)
    listing = broadcast_object(listing)
    if isinstance(listing, str):
        raise UserError(listing)
    return listing


def log_plan(corpus, costs: list[int]) -> None:
    if corpus.ignored:
        logger.info("--input: %d file(s) that are neither videos nor folders of frames left out", corpus.ignored)
    logger.info("%d videos to segment (%d estimated frames)%s", len(corpus.entries),
                sum(entry.frames for entry in corpus.entries),
                f", {len(corpus.failures)} more refused when listed" if corpus.failures else "")
    if world_size() > 1:
        shares = balanced_shares(costs, world_size())
        logger.info("spread over %d processes, longest first onto the least-loaded: %s", world_size(),
                    "; ".join(f"rank {r}: {len(share)} videos, {sum(costs[i] for i in share)} frames to predict"
                              for r, share in enumerate(shares)))
    for failure in corpus.failures:
        logger.warning("%s failed, going on with the other videos: %s", failure["path"], failure["reason"])


def failure_reason(error: BaseException) -> str:
    if isinstance(error, torch.OutOfMemoryError):
        return f"out of the device's memory: {str(error).splitlines()[0]}"
    return str(error)


def infer_entry(engine, entry, inference, settings: dict, results_dir: Path, progress: JobProgress) -> dict:
    """Index, predict (or reuse) and write one video; its outcome: path, sequence, rank, status
    (done | skipped | failed) and, unless failed, its frames, record and Sequence, else the reason."""
    outcome = {"path": str(entry.path), "sequence": entry.name, "rank": rank()}
    progress.start_video(entry.frames)
    try:
        sequence = index_entry(entry)
        record, reused = infer_sequence(engine, sequence, inference, settings, results_dir, progress)
    except VIDEO_FAILURES as error:
        outcome.update(status="failed", reason=failure_reason(error))
        logger.warning("%s failed, going on with the other videos: %s", entry.path, outcome["reason"])
    else:
        outcome.update(status="skipped" if reused else "done", frames=sequence.num_frames, record=record,
                       indexed=sequence)
    progress.end_video(outcome["status"])
    return outcome


def infer_corpus(cfg, run, model, weights_path: str, input_path: str, fingerprint: dict, started: float,
                 write_report) -> dict:
    """Predict every video of the corpus `input_path` into run.results_dir with `model` (on
    run.device); return the summary of all ranks (protocols.summarise) with "corpus" (the
    counts) and "failed_videos". `write_report`: tasks.infer.write_run_report (passed in, as
    tasks.infer calls this module)."""
    results_dir = run.results_dir
    corpus, costs = shared_listing(input_path, results_dir, cfg.inference.overwrite)
    if is_main_process():
        log_plan(corpus, costs)
    engine = build_engine(cfg, model, run.device)
    engine.model.eval()
    protocol = protocol_for(cfg.inference.protocol, cfg.data.test)
    settings = output_settings(cfg.inference, protocol, fingerprint, writing=True)
    total_videos = len(corpus.entries) + len(corpus.failures)
    with JobProgress(sum(entry.frames for entry in corpus.entries), total_videos, len(corpus.failures),
                     show=is_main_process()) as progress:
        outcomes = [infer_entry(engine, entry, cfg.inference, settings, results_dir, progress)
                    for entry in shard_by_cost(corpus.entries, costs)]
        progress.wait_for_all_ranks()
    by_sequence = {outcome["sequence"]: outcome for share in gather_objects(outcomes) for outcome in share}
    outcomes = [by_sequence[entry.name] for entry in corpus.entries]
    failures = corpus.failures + [{key: outcome[key] for key in ("path", "sequence", "reason")}
                                  for outcome in outcomes if outcome["status"] == "failed"]
    kept = [outcome for outcome in outcomes if outcome["status"] != "failed"]
    summary = summarise({outcome["sequence"]: outcome["record"] for outcome in kept}, protocol,
                        cfg.inference.eval_frames)
    counts = {"videos": total_videos, "done": sum(o["status"] == "done" for o in outcomes),
              "skipped": sum(o["status"] == "skipped" for o in outcomes), "failed": len(failures),
              "frames": sum(o["frames"] for o in outcomes if o["status"] == "done"), "seconds": None}
    summary.update(config=cfg.name, checkpoint=str(weights_path), corpus=counts, failed_videos=len(failures))
    if is_main_process():
        write_json(results_dir / FAILURES_NAME, {"input": str(input_path), "videos": total_videos,
                                                 "failed": len(failures), "failures": failures})
        if cfg.inference.report:
            write_report(cfg, run, weights_path, [o["indexed"] for o in kept], summary, input_path,
                         failures=failures)
    counts["seconds"] = time.perf_counter() - started
    if is_main_process():
        report_counts(counts, results_dir)
    wait_for_rank_0(finished=is_main_process())
    return summary


def report_counts(counts: dict, results_dir: Path) -> None:
    """The summary line on stdout and in the log file; when videos failed, a last line with their
    count. The wall time runs from the model's loading to the report written."""
    if counts["skipped"]:
        logger.info("%d videos were complete in %s and were not predicted again (inference.overwrite=true "
                    "redoes them)", counts["skipped"], results_dir)
    rate = counts["frames"] / counts["seconds"] if counts["seconds"] > 0 else 0.0
    lines = [f"{counts['videos']} videos: {counts['done']} done, {counts['skipped']} skipped (complete), "
             f"{counts['failed']} failed; {counts['frames']} frames predicted in {counts['seconds']:.1f} s wall "
             f"time ({rate:.1f} frames/s); outputs in {results_dir}"]
    logger.info("%s", lines[0], extra=LOG_FILE_ONLY)
    if counts["failed"]:
        lines.append(f"{counts['failed']} of {counts['videos']} videos failed; paths and reasons in "
                     f"{results_dir / FAILURES_NAME}")
        logger.warning("%s", lines[1], extra=LOG_FILE_ONLY)
    sys.stdout.write("".join(line + "\n" for line in lines))  # the answer, as tasks.infer's table
    sys.stdout.flush()
