"""Result files, all written atomically: palette PNG masks, 8-bit probability PNGs and overlay
videos (each frame drawn by evaluation.overlays.overlay_frame). JSON summaries and CSV tables are
written by utils.files.write_json / write_csv.

Probability PNGs: single-channel 8-bit, grey level = round(255 * foreground probability), so
0 = certainly background, 255 = certainly foreground and 128 and above = the mask's foreground
up to rounding; read back as level / 255.
"""

import contextlib
import logging
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from datasets.io import write_palette_png
from datasets.transforms import resize_image
from inference_handlers.evaluation.overlays import overlay_frame
from utils.files import atomic_path, atomic_write

logger = logging.getLogger(__name__)

# Encoders tried in order for overlay videos: H.264 plays in every browser; VP9 in MP4 plays in
# Chrome and Firefox; MPEG-4 part 2 is the last resort (desktop players only).
OVERLAY_CODECS = ("libx264", "libopenh264", "libvpx-vp9", "mpeg4")
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


class OverlayEncoder:
    """Encodes frames with their masks tinted and outlined into an open MP4 container; frames take
    the size of the first one, cropped to even numbers of rows and columns (4:2:0 chroma)."""

    def __init__(self, container, codec: str, frame_rate: Fraction):
        self.container, self.codec, self.frame_rate = container, codec, frame_rate
        self.stream, self.shape = None, None

    def add(self, image: np.ndarray, labels: np.ndarray) -> None:
        """Append the uint8 (H, W, 3) `image` with the mask `labels` tinted and outlined."""
        if self.stream is None:
            self.shape = image.shape[:2]
            self.stream = self.container.add_stream(self.codec, rate=self.frame_rate)
            self.stream.width, self.stream.height = self.shape[1] // 2 * 2, self.shape[0] // 2 * 2
            self.stream.pix_fmt = "yuv420p"
        picture = overlay_frame(resize_image(image, self.shape), labels)[:self.stream.height, :self.stream.width]
        self.container.mux(self.stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))

    def finish(self) -> None:
        """Encode the frames the encoder still holds."""
        if self.stream is not None:
            self.container.mux(self.stream.encode())


@contextlib.contextmanager
def overlay_video(path: Path, frame_rate: Fraction):
    """An OverlayEncoder writing the MP4 (yuv420p, faststart) `path` frame by frame (`add`); the
    file appears, whole, when the block ends without an exception."""
    with atomic_path(path) as tmp_name, \
            av.open(tmp_name, mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
        video = OverlayEncoder(container, overlay_codec(), frame_rate)
        yield video
        video.finish()
