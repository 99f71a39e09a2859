"""`inference.live`: the settings of live sources (`--input` a stream URL, a camera, `-` for stdin),
a section of utils/config.py's InferenceConfig kept in a module of its own; and which `--input`
values are live sources (`is_live_input`), for config validation and the input's run folder.

The window mode applies to files too (`--task infer` / `eval` on a test set or a video), so the
cost of `causal` in J is measured with the same command as any other setting.
"""

from dataclasses import dataclass
from typing import Literal

from utils.errors import UserError

# URL schemes read as live streams through FFmpeg (those of the bundled build that exist)
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "tcp", "udp", "srt")
STDIN_INPUT = "-"           # --input -: an encoded stream piped on standard input
DEVICE_PREFIX = "/dev/video"  # a V4L2 camera


@dataclass
class LiveConfig:
    # centered: the offline windows, a frame waits for the frames after it (exact file masks) |
    # causal: one window per frame ending at it, the frame's mask from its last position
    window: Literal["centered", "causal"] = "centered"
    # when the network is slower than the source and the queue is full: oldest (drop the oldest
    # queued frame, keep the newest) | none (block the source) | auto (oldest for URLs and
    # cameras, none for - and files)
    drop: Literal["auto", "oldest", "none"] = "auto"
    # frames the capture thread buffers between the source and the network
    queue_frames: int = 4
    # seconds to open a source before it counts as never opened (or a reconnection as failed)
    open_timeout: float = 10.0
    # seconds without a frame after which a read ends (a stalled source)
    read_timeout: float = 5.0
    # reconnections of a URL source after its stream ended, stalled or broke (0 = none)
    reconnect: int = 3
    # seconds before the first reconnection, doubled for each further one
    backoff: float = 1.0
    # also write the frames with their masks tinted to this file or URL ("" = none); a URL
    # (udp://127.0.0.1:5000) gets MPEG-TS, a file the format of its suffix (.mp4, .mkv, .ts)
    overlay_output: str = ""
    # also write each mask to stdout as raw bytes, H x W uint8 (0 / 255), frame after frame
    masks_to_stdout: bool = False


def is_stream_url(spec) -> bool:
    """`spec` is a URL (scheme://...) of one of STREAM_SCHEMES."""
    scheme, separator, _ = str(spec).partition("://")
    return bool(separator) and scheme.lower() in STREAM_SCHEMES


def is_live_input(spec) -> bool:
    """`--input spec` names a live source: a stream URL, a V4L2 camera or `-` (stdin)."""
    spec = str(spec)
    return spec == STDIN_INPUT or spec.startswith(DEVICE_PREFIX) or is_stream_url(spec)


def validate_live(live: LiveConfig) -> None:
    if live.queue_frames < 1 or live.reconnect < 0:
        raise UserError(f"inference.live.queue_frames must be >= 1 and inference.live.reconnect >= 0 "
                        f"(got {live.queue_frames}, {live.reconnect})")
    if min(live.open_timeout, live.read_timeout) <= 0 or live.backoff < 0:
        raise UserError(f"inference.live.open_timeout and read_timeout must be > 0, backoff >= 0 "
                        f"(got {live.open_timeout}, {live.read_timeout}, {live.backoff})")
