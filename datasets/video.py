"""A user's own video as a `Sequence` (`--input PATH`): a video file decoded with PyAV, streamed
frame by frame, or a folder of frame images. No ground truth.

    video.mp4 | .avi | .mov | .mkv | .webm | .m4v   -> one sequence named after the file;
                                                      frames and masks numbered 00000, 00001, ...
    folder/ of .jpg | .jpeg | .png | .bmp frames     -> one sequence named after the folder, frames
                                                      in natural order (frame2 before frame10),
                                                      masks named after the frame files

The name (`input_name`) becomes an output folder (results/<name>/<input name>/, see
tasks/setup.py), so it must be a plain name, like every name read from data.
"""

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from datasets.io import DataFileError, check_plain_name, natural_key
from datasets.live_source import live_input_name
from datasets.sequence import Frames, Sequence
from utils.config_live import is_live_input
from utils.errors import UserError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
DEFAULT_FRAME_RATE = Fraction(24)  # frames per second of overlay videos made from image folders


class TruncatedVideoError(DataFileError, IndexError):
    """A video that ends before the frame asked for (it decodes fewer frames than it was counted
    to hold): an IndexError, and a DataFileError naming the file."""


class VideoFrames(Frames):
    """Decoded frames of a video file.

    Decodes forward from the start and keeps only the last frame it returned, so memory does not
    grow with the video's length; asking for an earlier frame decodes again from the start. A
    video that does not decode raises DataFileError, one that ends early TruncatedVideoError.
    """

    def __init__(self, path: Path):
        self.path = path
        self._container = None
        self._decoded = None
        self._next = 0           # index of the frame the decoder yields next
        self._last = (-1, None)  # (index, array) of the last frame returned

    def _restart(self) -> None:
        self.close()
        self._container = av.open(str(self.path))
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        self._decoded = self._container.decode(stream)
        self._next = 0

    def __getitem__(self, index: int) -> np.ndarray:
        if index == self._last[0]:
            return self._last[1]
        try:
            if self._decoded is None or index < self._next:
                self._restart()
            for frame in self._decoded:
                position, self._next = self._next, self._next + 1
                if position == index:
                    self._last = (index, frame.to_ndarray(format="rgb24"))
                    return self._last[1]
        except av.FFmpegError as error:
            raise DataFileError(f"cannot decode {self.path} after frame {self._next}: {error}") from error
        raise TruncatedVideoError(f"{self.path} has only {self._next} frames, frame {index} requested")

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
        self._container, self._decoded = None, None


@dataclass(frozen=True)
class VideoSequence(Sequence):
    """A video file: frames come from the decoder, not from files; frame i is named f"{i:05d}"."""

    video_path: Path = Path()
    frame_count: int = 0             # frames, counted when the sequence is indexed (count_frames)
    frame_rate: Fraction = DEFAULT_FRAME_RATE

    def open_frames(self) -> VideoFrames:
        return VideoFrames(self.video_path)

    @property
    def num_frames(self) -> int:
        return self.frame_count

    def frame_name(self, index: int) -> str:
        return f"{index:05d}"


def frame_rate_of(sequence: Sequence) -> Fraction:
    """Frames per second for overlay videos: the video's own rate, else DEFAULT_FRAME_RATE."""
    return sequence.frame_rate if isinstance(sequence, VideoSequence) else DEFAULT_FRAME_RATE


def count_frames(container, stream) -> int:
    """The video stream's frame count. An MP4/MOV container's sample table gives it without
    decoding, when it agrees with the stream's duration at its frame rate (an edit list that drops
    frames, or a variable rate, breaks the agreement); any other count is made by decoding."""
    if container.format.name.startswith("mov,mp4") and stream.frames > 0 and stream.duration and stream.average_rate:
        if round(stream.duration * stream.time_base * stream.average_rate) == stream.frames:
            return stream.frames
    return sum(1 for _ in container.decode(stream))


def input_name(path) -> str:
    """The name of the sequence of `--input PATH` (and of its output folder): a video file's stem,
    a frame folder's own name; refused (UserError) unless it is a plain name (no '.', '..' or
    empty name, as for `--input ..mp4` or `--input /`); a live source's: live_input_name."""
    if is_live_input(path):
        return live_input_name(str(path))
    path = Path(path)
    name = path.resolve().name if path.is_dir() else path.stem
    return check_plain_name(name, path, "the name of --input")


def index_video(path, name: str | None = None) -> VideoSequence:
    """A video file as a sequence named `name` (default: input_name); its frames are counted from
    the container or by decoding it once (count_frames)."""
    path = Path(path)
    name = name or input_name(path)
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise UserError(f"--input: no video stream in {path}")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            rate = stream.average_rate or stream.guessed_rate or DEFAULT_FRAME_RATE
            count = count_frames(container, stream)
    except av.FFmpegError as error:
        raise UserError(f"--input: cannot decode {path}: {error}") from error
    if count == 0:
        raise UserError(f"--input: no frames decoded from {path}")
    return VideoSequence(name=name, frame_paths=(), mask_paths={}, video_path=path,
                         frame_count=count, frame_rate=Fraction(rate))


def index_frame_folder(path, name: str | None = None) -> Sequence:
    """A folder of frame images as a sequence named `name` (default: input_name), in natural order
    of the file names; other files in it (videos too) are not read."""
    path = Path(path)
    name = name or input_name(path)
    frame_paths = tuple(sorted((p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES
                                and p.is_file()), key=natural_key))
    if not frame_paths:
        raise UserError(f"--input: no {'/'.join(IMAGE_SUFFIXES)} frames in {path}")
    return Sequence(name=name, frame_paths=frame_paths, mask_paths={})


def index_input(path) -> list[Sequence]:
    """`--input PATH`: a video file or a folder of frames, as a one-sequence list."""
    path = Path(path)
    if path.is_dir():
        return [index_frame_folder(path)]
    if not path.is_file():
        raise UserError(f"--input: no such file or folder: {path}")
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise UserError(f"--input: {path} is neither a folder of frames nor a video "
                        f"({', '.join(VIDEO_SUFFIXES)})")
    return [index_video(path)]


class ArrayFrames(Frames):
    """Frames held by the caller (a (T, H, W, 3) uint8 array or a list of (H, W, 3) arrays)."""

    any_order = True

    def __init__(self, frames):
        self.frames = frames

    def __getitem__(self, index: int) -> np.ndarray:
        return np.asarray(self.frames[index], dtype=np.uint8)


@dataclass(frozen=True, eq=False)
class ArraySequence(Sequence):
    """Frames passed in memory (Python API); frame i is named f"{i:05d}"."""

    frames: object = ()  # (T, H, W, 3) uint8 array or list of (H, W, 3) uint8 arrays, RGB

    def open_frames(self) -> ArrayFrames:
        return ArrayFrames(self.frames)

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    def frame_name(self, index: int) -> str:
        return f"{index:05d}"


def array_sequence(frames, name: str = "array") -> ArraySequence:
    """In-memory RGB frames as a sequence; every frame must be uint8 (H, W, 3)."""
    if len(frames) == 0:
        raise UserError("no frames given")
    for index, frame in enumerate(frames):
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise UserError(f"frame {index}: expected a uint8 (H, W, 3) RGB array, got {frame.dtype} {frame.shape}")
    return ArraySequence(name=name, frame_paths=(), mask_paths={}, frames=frames)
