"""Videos for tests: write frames as H.264, decode a video back into frames."""

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def write_video(path: Path, frames, rate: int = 10, first_pts: int | None = None) -> Path:
    """H.264 in the container of the suffix; first_pts: frames numbered from it (a negative start
    makes the MP4 muxer write an edit list that drops the frames before 0 when decoding)."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for index, frame in enumerate(frames):
            picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
            if first_pts is not None:
                picture.pts, picture.time_base = first_pts + index, Fraction(1, rate)
            for packet in stream.encode(picture):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def decode_all(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
