"""`--task infer --input SOURCE` on a live source (a stream URL, /dev/videoN, `-` for stdin):
masks written as the frames complete (inference_handlers/inference/live.py), under
results/<name>/<input name>/:

    <input name>/<frame>.png   the mask of each frame processed, named by its number in the source
                               (00000, 00001, ...; the numbers of dropped frames are missing)
    frames.csv                 mask, frame number, pts (seconds, the stream's timestamp), latency ms
    latency.json               latency p50 / p95 / max (ms, capture -> mask written), frames read,
                               processed and dropped, reconnections, frames processed per second
                               and why the source ended

inference.live.overlay_output also sends the frames with their masks tinted to a file or a URL
(MPEG-TS), inference.live.masks_to_stdout each mask as raw H x W bytes (0 / 255) to stdout.
SIGTERM or Ctrl-C ends the read: the frames read so far are finished (the tail windows run) and
every file is written; the exit status is then 128 + the signal's number.
"""

import contextlib
import logging
import signal
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from tqdm import tqdm

from datasets.corpus import input_name
from datasets.live_source import first_line, open_capture, shown
from inference_handlers.inference import build_engine
from inference_handlers.inference.live import LatencyLog, stream_predictions
from inference_handlers.inference.writers import OverlayEncoder, overlay_codec, write_mask
from tasks.resume import StopSignals
from utils.config_live import is_stream_url
from utils.errors import UserError
from utils.files import atomic_path, write_csv, write_json

logger = logging.getLogger(__name__)

OVERLAY_RATE = Fraction(25)  # frames per second written into the overlay stream's timestamps


@contextlib.contextmanager
def overlay_output(target: str):
    """An OverlayEncoder writing to `target`: a URL as MPEG-TS, frame by frame; a file in the
    format of its suffix, appearing whole at the end (atomic). None for an empty target."""
    if not target:
        yield None
        return
    if is_stream_url(target):
        try:
            container = av.open(target, mode="w", format="mpegts")
        except av.FFmpegError as error:
            raise UserError(f"inference.live.overlay_output: cannot open {shown(target)}: "
                            f"{first_line(error)}") from error
        with container:
            video = OverlayEncoder(container, overlay_codec(), OVERLAY_RATE)
            yield video
            video.finish()
        return
    with atomic_path(target) as tmp_name, \
            av.open(tmp_name, mode="w", format=av_format_of(Path(target))) as container:
        video = OverlayEncoder(container, overlay_codec(), OVERLAY_RATE)
        yield video
        video.finish()


def av_format_of(path: Path) -> str:
    return {".ts": "mpegts", ".mkv": "matroska", ".mov": "mov"}.get(path.suffix.lower(), "mp4")


def infer_live(cfg, run, model, input_path: str, show_progress: bool = True) -> dict:
    """Segment the live source `input_path` until it ends, stalls or a stop signal comes;
    returns the latency summary (LatencyLog.summary), with `stopped` the signal's name or None."""
    live = cfg.inference.live
    name = input_name(input_path)
    results_dir = run.results_dir
    engine = build_engine(cfg, model, run.device)
    engine.model.eval()
    capture = open_capture(input_path, live)
    try:
        return run_live(cfg, engine, capture, results_dir, name, show_progress)
    finally:
        capture.stop()


def run_live(cfg, engine, capture, results_dir: Path, name: str, show_progress: bool) -> dict:
    """infer_live's loop over the frames of a started capture, then its files and last line."""
    live = cfg.inference.live
    logger.info("live source %s opened: window %s, drop %s, queue of %d frames", capture.name,
                engine.window_mode, capture.drop, live.queue_frames)
    latency, rows = LatencyLog(), [["mask", "frame_number", "pts_s", "latency_ms"]]
    stdout = sys.stdout.buffer if live.masks_to_stdout else None
    stopping = "ending the read, finishing the frames read so far"
    with StopSignals(stopping) as stop, overlay_output(live.overlay_output) as video, \
            tqdm(desc="live", unit="frame", disable=not show_progress) as progress:
        predictions = stream_predictions(engine, capture, lambda: stop.received is not None,
                                         with_frames=video is not None)
        with contextlib.closing(predictions):
            for frame, prediction in predictions:
                mask_name = f"{frame.number:05d}"
                labels = prediction.labels()
                write_mask(results_dir, name, mask_name, labels)
                if stdout is not None:
                    stdout.write((labels * np.uint8(255)).tobytes())
                    stdout.flush()
                if video is not None:
                    video.add(prediction.frame, labels)
                rows.append([mask_name, frame.number, "" if frame.pts is None else frame.pts,
                             round(latency.add(frame), 3)])
                engine.release(prediction)
                progress.update(1)
                progress.set_postfix(fps=f"{progress.format_dict['rate'] or 0:.1f}",
                                     p50_ms=f"{latency.p50():.0f}", dropped=capture.dropped)
    capture.stop()  # counts final: the thread reads no further frame
    summary = latency.summary(capture.counts())
    summary.update(source=capture.name, window=engine.window_mode, drop=capture.drop,
                   stopped=stop.received, config=cfg.name)
    write_csv(results_dir / "frames.csv", rows)
    write_json(results_dir / "latency.json", summary)
    logger.info("%s", summary_line(summary))
    return summary


def summary_line(summary: dict) -> str:
    """The run's last line: counts, latency and why the source ended."""
    latency = summary["latency_ms"]
    figures = ("latency p50 {p50:.0f} ms, p95 {p95:.0f} ms, max {max:.0f} ms".format(**latency)
               if latency["p50"] is not None else "no frame processed")
    ended = f"stopped by {summary['stopped']}" if summary["stopped"] else summary["end"]
    return (f"live {summary['source']} ({summary['window']}): {summary['frames_read']} frames read, "
            f"{summary['frames_processed']} processed, {summary['frames_dropped']} dropped, "
            f"{summary['reconnects']} reconnections, {figures}, {summary['frames_per_s']:.1f} frames/s; "
            f"ended: {ended}")


def stop_status(summary: dict) -> int:
    """0, or 128 + the number of the signal that stopped the run."""
    return 128 + signal.Signals[summary["stopped"]].value if summary.get("stopped") else 0
