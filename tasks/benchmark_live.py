"""`python -m tasks.benchmark -c CONFIG --live [--rate 10 --frames 100 --height H --width W]
[--wts CHECKPOINT] [key=value ...]`: a generated MPEG-TS stream served over TCP on 127.0.0.1 at
--rate frames per second, segmented live (inference_handlers/inference/live.py) once per window mode, with
the config's model (random weights unless --wts) and inference.live settings (drop: `auto` is
`oldest` for the URL). One JSON line per mode on stdout (also results/<name>/benchmark_live.json):

    window, drop, rate, frames          the mode and the source
    latency_ms                          p50 / p95 / max: capture (decoded) -> prediction handed out
    frames_read / processed / dropped   as in latency.json of a live run
    frames_per_s                        frames processed per second of the run
    ms_per_window                       median of the network's forward on one window of the
                                        stream's size (the compute a causal frame waits for)
    delay_frames                        frames of delay of the mode (centered: clip_length under
                                        tail shift_back, clip_length - 1 under repeat_first;
                                        causal: 0)

`StreamServer` and `encode_mpegts` are also what the tests serve streams with.
"""

import io
import json
import socket
import statistics
import sys
import threading
import time

import av
import numpy as np
import torch

from checkpoints.weights import load_model
from datasets.live_source import open_capture
from inference_handlers.inference import build_engine
from inference_handlers.inference.live import LatencyLog, stream_predictions
from utils.files import write_json
from network import build_model


def moving_square_frames(count: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """(count, H, W, 3) uint8 frames: a dim noisy background and a bright square moving right."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 90, (count, height, width, 3), dtype=np.uint8)
    side = max(4, height // 3)
    for index, frame in enumerate(frames):
        left = (index * 3) % max(1, width - side)
        frame[height // 3:height // 3 + side, left:left + side] = (230, 200, 60)
    return frames


def encode_mpegts(frames: np.ndarray, rate: int = 25) -> list[bytes]:
    """MPEG-TS (MPEG-2 video, intra frames only) of `frames`, as one chunk of bytes per frame (the
    first holds the stream's headers, the last the end of the stream): a server sends chunk i at
    frame i's time."""
    buffer, chunks, written = io.BytesIO(), [], 0
    with av.open(buffer, mode="w", format="mpegts", options={"flush_packets": "1"}) as container:
        stream = container.add_stream("mpeg2video", rate=rate)
        stream.height, stream.width = frames.shape[1] // 2 * 2, frames.shape[2] // 2 * 2
        stream.pix_fmt, stream.bit_rate, stream.gop_size = "yuv420p", 8_000_000, 1
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image[:stream.height, :stream.width],
                                                                   format="rgb24")))
            chunks.append(buffer.getvalue()[written:])
            written = len(buffer.getvalue())
        container.mux(stream.encode())
    chunks[-1] += buffer.getvalue()[written:]
    return chunks


class StreamServer:
    """Serves `sessions` (lists of byte chunks) over TCP on 127.0.0.1, one connection per session,
    a chunk every 1 / rate seconds (rate 0: at once); after a session, the connection is held
    open without data for `hold_s` seconds (a stalled source) and closed. The listening socket
    closes after the last session (a reconnection is refused) or `accept_timeout_s`."""

    def __init__(self, sessions: list[list[bytes]], rate: float = 0.0, hold_s: float = 0.0,
                 accept_timeout_s: float = 30.0):
        self.sessions, self.rate, self.hold_s = sessions, rate, hold_s
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(accept_timeout_s)
        self.port = self.listener.getsockname()[1]
        self.url = f"tcp://127.0.0.1:{self.port}"
        self.stop = threading.Event()
        self.sent_chunks = 0
        self.thread = threading.Thread(target=self._serve, name="stream-server", daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            for chunks in self.sessions:
                connection, _ = self.listener.accept()
                with connection:
                    start = time.monotonic()
                    for index, chunk in enumerate(chunks):
                        if self.stop.wait(max(0.0, start + index / self.rate - time.monotonic())
                                          if self.rate else 0.0):
                            return
                        connection.sendall(chunk)
                        self.sent_chunks += 1
                    self.stop.wait(self.hold_s)
        except OSError:  # the client went away, or no connection came
            return
        finally:
            self.listener.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.listener.close()


def delay_frames(engine) -> int:
    if engine.window_mode == "causal":
        return 0
    return engine.clip_length if engine.tail == "shift_back" else engine.clip_length - 1


def window_ms(engine, height: int, width: int, runs: int = 5) -> float:
    """Median ms of the engine's forward on one window of `height` x `width` frames."""
    image = np.zeros((height, width, 3), dtype=np.uint8)
    frame, pad, _, _ = engine.prepare(image)
    clip = torch.stack([frame] * engine.clip_length, dim=1)[None].to(engine.device)
    times = []
    for _ in range(runs + 1):
        start = time.perf_counter()
        engine.forward_windows(clip)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times[1:])


def benchmark_live(cfg, model, device, rate: float, frames: int, height: int, width: int) -> list[dict]:
    """One summary per window mode of a `rate` frames/s stream of `frames` frames."""
    chunks = encode_mpegts(moving_square_frames(frames, height, width), rate=max(1, round(rate)))
    results = []
    for mode in ("centered", "causal"):
        cfg.inference.live.window = mode
        engine = build_engine(cfg, model, device)
        engine.model.eval()
        compute_ms = window_ms(engine, height // 2 * 2, width // 2 * 2)
        server = StreamServer([chunks], rate=rate)
        capture = open_capture(server.url, cfg.inference.live)
        latency = LatencyLog()
        try:
            for frame, prediction in stream_predictions(engine, capture):
                latency.add(frame)
                engine.release(prediction)
        finally:
            capture.stop()
            server.close()
        summary = latency.summary(capture.counts())
        results.append({"window": mode, "drop": capture.drop, "rate": rate, "frames": frames,
                        "height": height, "width": width, **summary, "ms_per_window": compute_ms,
                        "delay_frames": delay_frames(engine), "device": str(device),
                        "threads": torch.get_num_threads()})
    return results


def add_live_arguments(parser) -> None:
    parser.add_argument("--live", action="store_true",
                        help="latency and dropped frames of a stream served at --rate (tasks/benchmark_live.py)")
    parser.add_argument("--rate", type=float, default=10.0, help="--live: the stream's frames per second")
    parser.add_argument("--wts", help="--live: the checkpoint to run (default: random weights)")


def report_live_benchmark(cfg, args, run) -> None:
    """One JSON line per window mode on stdout, all in results/<name>/benchmark_live.json; the
    stream ends without reconnections (inference.live.reconnect = 0)."""
    cfg.inference.live.reconnect = 0
    model = load_model(cfg.model, args.wts)[0] if args.wts else build_model(cfg.model)
    model.to(run.device)
    results = benchmark_live(cfg, model, run.device, args.rate, args.frames, args.height, args.width)
    for result in results:
        sys.stdout.write(json.dumps(result) + "\n")  # the answer
        sys.stdout.flush()
    write_json(run.results_dir / "benchmark_live.json", {"runs": results})
