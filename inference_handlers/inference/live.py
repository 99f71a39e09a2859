"""The engine on a live source: frames in as they are captured, predictions out as they complete.

The frames that reach the network (those the capture did not drop) form the sequence, numbered
0, 1, 2, ... in the order read; the engine (SaliencyEngine.predict_batches) runs its windows
on them as they arrive, with its own accumulation, so a mode's masks are those of the same
frames read from a file:

    centered   the offline schedule (sliding_windows). A window runs once its last frame is
               read; a frame is handed out once no later window can cover it. Under
               inference.tail = shift_back that is when the clip_length-th frame after it is read
               (a stream that ended there would end with a window covering it); under
               repeat_first, when the last window covering it ran. Delay: up to clip_length
               frames, plus a window's compute. At the end (the source ended or stalled, a stop
               was asked for) the tail windows run and every frame read gets its mask.
    causal     one window per frame, ending at it (causal_windows): the frame's mask is that
               window's last position. Delay: no frame, a window's compute.

`LatencyLog` keeps each frame's latency (capture -> handed out or written) and summarises it.
"""

import collections
import time
from typing import Iterator

import numpy as np

from datasets.clip_sampling import causal_window, schedule_windows, settled_window


class LiveSchedule:
    """Pulls frames from a capture (datasets.live_source.Capture, or anything with its
    `next_frame(should_stop)`) as the window mode needs them, prepares them for the engine and
    makes the (windows, finished_before, kept_from) batches of `predict_batches`."""

    def __init__(self, engine, capture, should_stop=lambda: False):
        self.engine, self.capture, self.should_stop = engine, capture, should_stop
        self.prepared = collections.deque()  # frames read, prepared, not yet taken by the engine
        self.frames = {}                     # sequence index -> LiveFrame, until handed out
        self.count = 0                       # frames read into the sequence
        self.ended = False

    def pull(self) -> bool:
        """Read the next frame into the sequence; False once the source has ended."""
        if self.ended:
            return False
        frame = self.capture.next_frame(self.should_stop)
        if frame is None:
            self.ended = True
            return False
        self.prepared.append(self.engine.prepare(frame.image))
        self.frames[self.count] = frame
        self.count += 1
        return True

    def prepared_frames(self) -> Iterator:
        """The prepared frames in order, for the engine (they are read before a batch needs them)."""
        while self.prepared:
            yield self.prepared.popleft()

    def batches(self) -> Iterator[tuple[list, int, int]]:
        return self.causal_batches() if self.engine.window_mode == "causal" else self.centered_batches()

    def causal_batches(self) -> Iterator[tuple[list, int, int]]:
        length = self.engine.clip_length
        while self.pull():
            frame = self.count - 1
            yield [causal_window(frame, length)], frame + 1, max(0, frame + 2 - length)

    def centered_batches(self) -> Iterator[tuple[list, int, int]]:
        """Settled windows (those of every schedule of a longer stream) as their frames arrive;
        frames ruled out of a tail window (shift_back) finished as frames arrive; at the end, the
        rest of the offline schedule of the frames read."""
        engine, done, finished = self.engine, 0, 0
        length, stride = engine.clip_length, engine.stride
        while True:
            window = settled_window(done, length, stride)
            while self.count < window.frames[-1] + 1 and self.pull():
                if engine.tail == "shift_back" and done > 0 and min(done * stride, self.count - length) > finished:
                    finished = min(done * stride, self.count - length)
                    yield [], finished, finished
            if self.count < window.frames[-1] + 1:
                break
            done += 1
            finished = done * stride if engine.tail == "repeat_first" else min(done * stride, self.count - length)
            yield [window], finished, finished
        if self.count == 0:
            return
        windows = schedule_windows(self.count, length, stride, engine.tail)
        assert windows[:done] == [settled_window(i, length, stride) for i in range(done)]
        yield from engine.batches(windows[done:], self.count)
        yield [], self.count, self.count  # the frames no window was left for

    def take(self, index: int):
        """The LiveFrame of a handed-out sequence index (forgotten here)."""
        return self.frames.pop(index)


def stream_predictions(engine, capture, should_stop=lambda: False, with_frames: bool = False):
    """(LiveFrame, FramePrediction) for every frame the capture delivers, in order, as each
    completes under the engine's window mode (inference.live.window). The caller releases each
    prediction (engine.release) when done with it."""
    schedule = LiveSchedule(engine, capture, should_stop)
    for prediction in engine.predict_batches(schedule.prepared_frames(), schedule.batches(), with_frames):
        yield schedule.take(prediction.index), prediction


class LatencyLog:
    """Latencies in ms of the frames handed out, and the run's counts (`summary`)."""

    def __init__(self):
        self.latencies_ms: list[float] = []
        self.started = time.monotonic()

    def add(self, frame) -> float:
        latency = (time.monotonic() - frame.captured) * 1000
        self.latencies_ms.append(latency)
        return latency

    def p50(self) -> float | None:
        return float(np.percentile(self.latencies_ms, 50)) if self.latencies_ms else None

    def summary(self, counts: dict) -> dict:
        """latency p50 / p95 / max in ms, frames read / processed / dropped, frames processed per
        second of the run (`counts`: the capture's counters, datasets.live_source.Capture.counts)."""
        elapsed = time.monotonic() - self.started
        values = np.asarray(self.latencies_ms)
        latency = ({"p50": float(np.percentile(values, 50)), "p95": float(np.percentile(values, 95)),
                    "max": float(values.max())} if len(values) else {"p50": None, "p95": None, "max": None})
        return {"latency_ms": latency, "frames_read": counts["frames_read"], "frames_processed": len(values),
                "frames_dropped": counts["frames_dropped"], "reconnects": counts["reconnects"],
                "seconds": elapsed, "frames_per_s": len(values) / elapsed if elapsed > 0 else 0.0,
                "end": counts["end"]}
