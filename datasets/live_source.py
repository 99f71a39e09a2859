"""Live sources (`--input` a stream URL, a V4L2 camera, `-` for an encoded stream on stdin), read
by a capture thread that never falls behind silently.

    rtsp:// rtmp:// http(s):// tcp:// udp:// srt://   a stream, through PyAV (FFmpeg)
    /dev/videoN                                       a V4L2 camera
    -                                                 an encoded stream piped on stdin (pipe:0)

`Capture` opens the source (with inference.live.open_timeout; a source that does not open is a
UserError naming it) and decodes it in a thread of its own, continuously, into a queue of
`inference.live.queue_frames` frames for the network. When the network is slower than the
source, the drop policy applies: `oldest` (drop the oldest queued frame, keep the newest) or
`none` (the thread waits for room: the source is not read meanwhile, a pipe or file blocks its
writer). Every dropped frame is counted. A read that gets no frame for `read_timeout` seconds
ends (PyAV's read timeout for network protocols; for a pipe or camera, which FFmpeg cannot
interrupt, `next_frame` stops waiting); a URL source that ended, stalled or broke is opened again
after `backoff`, 2 x `backoff`, ... seconds, up to `reconnect` times in a row.
"""

import collections
import logging
import re
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import av
import numpy as np

from utils.config_live import DEVICE_PREFIX, STDIN_INPUT, LiveConfig, is_stream_url
from utils.errors import UserError

logger = logging.getLogger(__name__)

WAIT_STEP_S = 0.05  # how often a waiting reader looks at the stop request and the read timeout


@dataclass
class LiveFrame:
    image: np.ndarray | None  # uint8 (H, W, 3) RGB as decoded
    number: int               # frame number in the source, from 0 (dropped frames counted)
    pts: float | None         # presentation time, seconds (the stream's; None when it has none)
    captured: float           # time.monotonic() when the frame was decoded


def shown(spec: str) -> str:
    """The source as logs and errors name it: a URL's user name and password left out."""
    if not is_stream_url(spec):
        return "stdin" if spec == STDIN_INPUT else spec
    parts = urlsplit(spec)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return parts._replace(netloc=netloc).geturl()


def live_input_name(spec: str) -> str:
    """The name of a live source's run folder (results/<name>/<input name>/): `stdin`, the
    camera's device name (video0), or the URL's scheme, host, port and path as one plain name
    (tcp://127.0.0.1:5000/cam -> tcp_127_0_0_1_5000_cam)."""
    if spec == STDIN_INPUT:
        return "stdin"
    if spec.startswith(DEVICE_PREFIX):
        return re.sub(r"[^A-Za-z0-9_-]+", "_", spec.rsplit("/", 1)[-1]).strip("_") or "camera"
    parts = urlsplit(spec)
    text = f"{parts.scheme}_{parts.hostname or ''}_{parts.port or ''}_{parts.path}"
    return re.sub(r"[^A-Za-z0-9-]+", "_", text).strip("_")


def default_drop(spec: str) -> str:
    """inference.live.drop = auto: oldest for URLs and cameras, none for stdin and files."""
    return "oldest" if is_stream_url(spec) or spec.startswith(DEVICE_PREFIX) else "none"


def open_container(spec: str, live: LiveConfig):
    """The PyAV input container of `spec`, with the open and read timeouts (av.open)."""
    timeout = (live.open_timeout, live.read_timeout)
    if spec == STDIN_INPUT:
        return av.open("pipe:0", timeout=timeout)
    if spec.startswith(DEVICE_PREFIX):
        return av.open(spec, format="v4l2", timeout=timeout)
    return av.open(spec, timeout=timeout)


def decoded_frames(container):
    """(RGB image, pts in seconds) of the container's first video stream, as decoded; a read that
    fails first hands out the frames the decoder still holds."""
    if not container.streams.video:
        raise av.error.InvalidDataError(0, "no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    try:
        for packet in container.demux(stream):
            yield from map(rgb_and_time, packet.decode())
    except (av.FFmpegError, OSError):
        yield from map(rgb_and_time, stream.decode(None))
        raise


def rgb_and_time(frame) -> tuple[np.ndarray, float | None]:
    return frame.to_ndarray(format="rgb24"), (float(frame.time) if frame.time is not None else None)


class Capture:
    """The capture thread of a live source and its queue (see the module's docstring).

    `open_reader()` opens the source and returns an iterator of (image, pts); it raises an
    exception (any) when the source does not open. `reconnectable`: open it again when it ends
    or breaks. `start()` opens it the first time (a failure is a UserError naming `name`) and
    starts the thread; `next_frame()` hands out the frames in order; `stop()` ends the thread.
    Counters: `read` (frames decoded), `dropped`, `reconnects`; `end_reason` once it ended.
    """

    def __init__(self, open_reader, name: str, live: LiveConfig, drop: str, reconnectable: bool):
        self.open_reader, self.name, self.live = open_reader, name, live
        self.drop, self.reconnectable = drop, reconnectable
        self.queue = collections.deque()
        self.condition = threading.Condition()
        self.read = self.dropped = self.reconnects = 0
        self.end_reason: str | None = None
        self.reconnecting = False
        self.last_read = time.monotonic()
        self.stopping = False
        self.thread = None
        # a URL's reads time out in FFmpeg (then it reconnects): next_frame waits longer for them
        self.stall_after = live.read_timeout + (live.open_timeout if reconnectable else 0.0)

    def start(self) -> "Capture":
        """Open the source in the capture thread and wait for it: FFmpeg cannot interrupt the
        read of a pipe or a camera, so a source that never delivers enough to open is given up
        after open_timeout (+ 1 s) here, its thread left to end with the process."""
        opened, outcome = threading.Event(), {}

        def open_and_run():
            try:
                outcome["reader"] = self.open_reader()
            except Exception as error:  # FFmpeg fails to open in many ways (network, format, device)
                outcome["error"] = error
            opened.set()
            if "reader" in outcome and self.stopping:  # opened after start gave up on it
                outcome["reader"].close()
            elif "reader" in outcome:
                self._run(outcome["reader"])

        self.thread = threading.Thread(target=open_and_run, name="live-capture", daemon=True)
        self.thread.start()
        if not opened.wait(self.live.open_timeout + 1.0):
            self.stopping = True
            raise UserError(f"--input {self.name}: the source did not open within {self.live.open_timeout:g} s "
                            f"(inference.live.open_timeout)")
        if "error" in outcome:
            error = outcome["error"]
            raise UserError(f"--input {self.name}: cannot open the source: {first_line(error)}") from error
        return self

    def _run(self, reader) -> None:
        self.last_read = time.monotonic()
        failures = 0  # reconnections in a row without a frame
        while True:
            if reader is not None:
                read_before = self.read
                reason = self._read(reader)
                if self.read > read_before:
                    failures = 0
            if self.stopping:
                return self._end("stopped")
            if not self.reconnectable or failures >= self.live.reconnect:
                return self._end(reason)
            failures += 1
            delay = self.live.backoff * 2 ** (failures - 1)
            logger.warning("%s: %s; reconnecting in %.1f s (%d of %d)", self.name, reason, delay, failures,
                           self.live.reconnect)
            with self.condition:
                self.reconnecting = True
                self.condition.wait_for(lambda: self.stopping, timeout=delay)
            reader = None
            if not self.stopping:
                try:
                    reader = self.open_reader()
                    self.reconnects += 1
                except Exception as error:  # as in start
                    reason = f"cannot open it again: {first_line(error)}"
            with self.condition:
                self.reconnecting = False
                self.last_read = time.monotonic()

    def _read(self, reader) -> str:
        """Decode until the source ends, breaks, stalls or a stop is asked for; the reason."""
        try:
            for image, pts in reader:
                if not self._push(image, pts):
                    return "stopped"
        except av.error.ExitError:  # PyAV's timeout interrupted a read
            return f"stalled: no data for {self.live.read_timeout:g} s"
        except (av.FFmpegError, OSError) as error:
            return f"read failed: {first_line(error)}"
        finally:
            close = getattr(reader, "close", None)
            if close is not None:
                close()
        return "the stream ended"

    def _push(self, image, pts) -> bool:
        """Queue a decoded frame under the drop policy; False when a stop was asked for."""
        frame = LiveFrame(image, self.read, pts, time.monotonic())
        with self.condition:
            if self.drop == "oldest":
                while len(self.queue) >= self.live.queue_frames:
                    self.queue.popleft()
                    self.dropped += 1
            else:
                self.condition.wait_for(lambda: self.stopping or len(self.queue) < self.live.queue_frames)
            if self.stopping:
                return False
            self.queue.append(frame)
            self.read += 1
            self.last_read = frame.captured
            self.condition.notify_all()
        return True

    def _end(self, reason: str) -> None:
        with self.condition:
            if self.end_reason is None:
                self.end_reason = reason
            self.condition.notify_all()

    def next_frame(self, should_stop=lambda: False) -> LiveFrame | None:
        """The oldest queued frame, waiting for one; None once the source has ended or
        `should_stop()` was true (the thread then reads no further frame) and the queued frames
        are handed out, or when no frame came for read_timeout seconds (then `end_reason` says
        so; the thread, maybe blocked in a read FFmpeg cannot interrupt, is left to end with the
        process)."""
        with self.condition:
            while True:
                if not self.stopping and should_stop():  # the thread reads no further frame
                    self.stopping = True
                    self.condition.notify_all()
                if self.queue:
                    frame = self.queue.popleft()
                    self.condition.notify_all()
                    return frame
                if self.end_reason is not None or self.stopping:
                    return None
                waited = time.monotonic() - self.last_read
                if not self.reconnecting and waited > self.stall_after:
                    self.end_reason = f"stalled: no frame for {waited:.1f} s"
                    self.stopping = True
                    return None
                self.condition.wait(WAIT_STEP_S)

    def stop(self, wait_s: float = 2.0) -> None:
        """Ask the thread to end and wait up to `wait_s` for it."""
        with self.condition:
            self.stopping = True
            self.condition.notify_all()
        if self.thread is not None:
            self.thread.join(wait_s)

    def counts(self) -> dict:
        return {"frames_read": self.read, "frames_dropped": self.dropped, "reconnects": self.reconnects,
                "end": self.end_reason or "running"}


def first_line(error: BaseException) -> str:
    """An error's reason without the URL it names (which may hold a password)."""
    reason = getattr(error, "strerror", None) or str(error).strip()
    return (reason.splitlines() or [type(error).__name__])[0]


def open_capture(spec: str, live: LiveConfig) -> Capture:
    """The started Capture of `--input spec` (a URL, /dev/videoN or -) under inference.live."""
    drop = default_drop(spec) if live.drop == "auto" else live.drop

    def open_reader():
        container = open_container(spec, live)
        frames = decoded_frames(container)
        return ClosingReader(frames, container)

    return Capture(open_reader, shown(spec), live, drop, reconnectable=is_stream_url(spec)).start()


class ClosingReader:
    """An iterator of decoded frames that closes its container (close)."""

    def __init__(self, frames, container):
        self.frames, self.container = frames, container

    def __iter__(self):
        return self.frames

    def close(self) -> None:
        self.frames.close()
        self.container.close()
