"""Which frames form a clip: random training clips and sliding-window test schedules."""

from dataclasses import dataclass

import numpy as np


def sample_training_clip(num_frames: int, start: int, clip_length: int, max_temporal_gap: int,
                         rng: np.random.Generator) -> list[int]:
    """clip_length distinct frames drawn from [start, start + max(gap, clip_length)), sorted.

    As in the original (SPEC 7.1); short sequences are filled up with copies of `start`. The
    draw happens per call, so every epoch sees new clips (the original froze them, defect 15).
    """
    end = min(num_frames, start + max(max_temporal_gap, clip_length))
    candidates = np.arange(start, end)
    count = min(clip_length, len(candidates))
    chosen = rng.choice(candidates, size=count, replace=False).tolist()
    chosen += [start] * (clip_length - count)
    return sorted(chosen)


@dataclass(frozen=True)
class Window:
    """A test clip: its frame indices and, per position, whether its prediction is counted."""

    frames: tuple[int, ...]
    counted: tuple[bool, ...]


def window_stride(clip_length: int, clip_overlap: int, dense: bool) -> int:
    return 1 if dense else clip_length - clip_overlap


def sliding_windows(num_frames: int, clip_length: int, stride: int, tail: str) -> list[Window]:
    """Sliding windows over a sequence, ordered by their first frame.

    tail "repeat_first" is the original schedule (SPEC 10.2): a window starts at every multiple
    of `stride`; one that runs past the end is truncated and filled up in front with copies of
    its first frame, and every copy counts in that frame's average.
    tail "shift_back" keeps every window inside the sequence: the last one starts at
    num_frames - clip_length, and only a sequence shorter than a clip is padded (with copies of
    its last frame, which are not counted).
    """
    if tail == "repeat_first":
        windows = []
        for start in range(0, num_frames, stride):
            frames = list(range(start, min(num_frames, start + clip_length)))
            frames = [start] * (clip_length - len(frames)) + frames
            windows.append(Window(tuple(frames), (True,) * clip_length))
        return windows
    if num_frames <= clip_length:
        padding = clip_length - num_frames
        frames = tuple(range(num_frames)) + (num_frames - 1,) * padding
        return [Window(frames, (True,) * num_frames + (False,) * padding)]
    starts = list(range(0, num_frames - clip_length + 1, stride))
    if starts[-1] != num_frames - clip_length:
        starts.append(num_frames - clip_length)
    return [Window(tuple(range(s, s + clip_length)), (True,) * clip_length) for s in starts]


def causal_windows(num_frames: int, clip_length: int) -> list[Window]:
    """One window per frame, ending at it, counted at its last position only: frame f's
    prediction comes from frames f - clip_length + 1 .. f (the first frames' windows filled up in
    front with copies of frame 0), never from a later frame (inference.live.window = causal)."""
    return [causal_window(frame, clip_length) for frame in range(num_frames)]


def causal_window(frame: int, clip_length: int) -> Window:
    """The causal window of `frame` (causal_windows)."""
    frames = [0] * max(0, clip_length - 1 - frame) + list(range(max(0, frame - clip_length + 1), frame + 1))
    return Window(tuple(frames), (False,) * (clip_length - 1) + (True,))


def settled_window(index: int, clip_length: int, stride: int) -> Window:
    """The `index`-th window of every sliding_windows schedule (either tail) of a sequence of at
    least index * stride + clip_length frames: a stream can run it before it knows its length."""
    start = index * stride
    return Window(tuple(range(start, start + clip_length)), (True,) * clip_length)


def schedule_windows(num_frames: int, clip_length: int, stride: int, tail: str,
                     mode: str = "centered") -> list[Window]:
    """The windows of a sequence under inference.live.window: sliding_windows (centered, the
    offline schedule) or causal_windows."""
    if mode == "causal":
        return causal_windows(num_frames, clip_length)
    return sliding_windows(num_frames, clip_length, stride, tail)
