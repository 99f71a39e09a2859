"""Result files, all written atomically: palette PNG masks, 8-bit probability PNGs, overlay
videos, JSON summaries (metrics, benchmarks) and CSV tables.

Probability PNGs: single-channel 8-bit, grey level = round(255 * foreground probability), so
0 = certainly background, 255 = certainly foreground and 128 and above = the mask's foreground
up to rounding; read back as level / 255.
"""

import csv
import io
import json
import logging
from fractions import Fraction
from pathlib import Path
from typing import Iterable

import av
import numpy as np
from PIL import Image
from scipy.ndimage import binary_dilation

from datasets.io import write_palette_png
from datasets.transforms import resize_image, resize_labels
from inference_handlers.metrics import disk, seg2bmap
from utils.files import atomic_write, atomic_write_text

logger = logging.getLogger(__name__)

# Encoders tried in order for overlay videos: H.264 plays in every browser; VP9 in MP4 plays in
# Chrome and Firefox; MPEG-4 part 2 is the last resort (desktop players only).
OVERLAY_CODECS = ("libx264", "libopenh264", "libvpx-vp9", "mpeg4")
OVERLAY_COLOR = np.array([255, 40, 40], dtype=np.float32)  # mask tint (RGB)
CONTOUR_COLOR = np.array([255, 255, 0], dtype=np.uint8)     # mask outline (RGB)
OVERLAY_ALPHA = 0.5                                         # weight of the tint inside the mask
# zlib settings of the mask PNGs: level 1 writes a 480p mask in 1.2 instead of 2.3 ms at PIL's
# default level 6 and reads back in 0.3 instead of 0.9 ms; files of a few KB, 1.75x larger (the
# run-length strategy gives smaller files than level 6 at level 1's writing speed, but reads back
# as slowly as level 6)
MASK_PNG_OPTIONS = {"compress_level": 1}


def write_mask(results_dir: Path, sequence_name: str, frame_name: str, labels: np.ndarray) -> Path:
    """results_dir/<sequence>/<frame>.png, values 0 = background, 1 = foreground."""
    path = results_dir / sequence_name / f"{frame_name}.png"
    write_palette_png(path, labels, **MASK_PNG_OPTIONS)
    return path


def write_probability(path: Path, probability: np.ndarray) -> None:
    """A uint8 (H, W) grey map (round(255 * p)) as a single-channel PNG."""
    image = Image.fromarray(np.asarray(probability, dtype=np.uint8), mode="L")
    atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))


def write_json(path: Path, summary: dict) -> None:
    atomic_write_text(path, json.dumps(summary, indent=2) + "\n")


def write_csv(path: Path, rows: list[list]) -> None:
    """Rows (the first one the header) as CSV; floats with 6 decimals."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for row in rows:
        writer.writerow([f"{value:.6f}" if isinstance(value, float) else value for value in row])
    atomic_write_text(path, buffer.getvalue())


def overlay_codec() -> str:
    """The first encoder of OVERLAY_CODECS that the bundled FFmpeg has."""
    for name in OVERLAY_CODECS:
        try:
            av.codec.Codec(name, "w")
        except av.codec.codec.UnknownCodecError:
            continue
        if name != OVERLAY_CODECS[0]:
            logger.warning("overlay videos: no libx264 in this FFmpeg build, using %s", name)
        return name
    raise RuntimeError(f"FFmpeg has none of the video encoders {', '.join(OVERLAY_CODECS)}")


def overlay_frame(image: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) frame with the mask tinted and outlined (outline ~ 1/200 of the diagonal)."""
    mask = resize_labels(np.asarray(labels, dtype=np.uint8), image.shape[:2]) != 0
    blended = image.astype(np.float32)
    blended[mask] = (1 - OVERLAY_ALPHA) * blended[mask] + OVERLAY_ALPHA * OVERLAY_COLOR
    result = blended.round().astype(np.uint8)
    thickness = max(1, round(np.hypot(*image.shape[:2]) / 400))
    result[binary_dilation(seg2bmap(mask), structure=disk(thickness))] = CONTOUR_COLOR
    return result


def write_overlay_video(path: Path, frames: Iterable[tuple[np.ndarray, np.ndarray]],
                        frame_rate: Fraction) -> int:
    """Encode (frame, mask) pairs as an MP4 (yuv420p, faststart); returns the frame count.

    Frames take the size of the first one, cropped to even numbers of rows and columns (4:2:0
    chroma).
    """
    count = 0

    def encode(tmp_path):
        nonlocal count
        codec = overlay_codec()
        with av.open(tmp_path, mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
            stream = None
            for image, labels in frames:
                if stream is None:
                    shape = image.shape[:2]
                    height, width = shape[0] // 2 * 2, shape[1] // 2 * 2
                    stream = container.add_stream(codec, rate=frame_rate)
                    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
                picture = overlay_frame(resize_image(image, shape), labels)[:height, :width]
                for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                    container.mux(packet)
                count += 1
            if stream is not None:
                for packet in stream.encode():
                    container.mux(packet)

    atomic_write(path, encode)
    return count
