"""Reading and writing frames and masks (written atomically, see utils/files.py).

Masks are palette PNGs whose pixel values are label ids (0 = background); the palette is the
PASCAL-VOC colour map that DAVIS uses, so index 1 is dark red (128, 0, 0). Ground truth in other
formats is read into the same label maps: DAVIS-2016 0/255 masks keep 255 as their id, and an
FBMS `.ppm` (white background, one colour per object) becomes 1 wherever it is not white.

A file that cannot be read raises `DataFileError`, one line naming the path, also when a
DataLoader worker meets it.
"""

import functools
import re
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from utils.errors import UserError
from utils.files import atomic_write

WHITE_BACKGROUND_SUFFIXES = (".ppm",)  # FBMS colour ground truth: background white, objects coloured
# folders of a results run beside its sequences' mask folders: probability maps (inference.save_probs)
# and overlay videos (inference.overlay), written by inference, read by the reports
PROBS_DIR, OVERLAYS_DIR = "probs", "overlays"


class DataFileError(UserError):
    """An image or mask that cannot be read.

    A DataLoader worker's exception reaches the main process as `DataFileError(<the worker's
    traceback as text>)` (torch's ExceptionWrapper); only its last line's message is kept, so the
    run still ends with one `error: cannot read ...` line.
    """

    def __init__(self, message: str):
        if "Traceback (most recent call last)" in message:
            message = message.rstrip().splitlines()[-1].split(": ", 1)[-1]
        super().__init__(message)


def check_plain_name(name: str, source: Path, where: str) -> str:
    """`name`, read from the data file `source` at `where` (e.g. 'line 3'), when it is a plain
    name: one path component, not empty, not '.' or '..', without '/', '\\' or NUL (hence not
    absolute). Names from data files become input and output paths (results/<name>/<sequence>/);
    anything else could make a run read or write outside its folders, so it is refused with one
    line naming the file and the place."""
    if not name or name in (".", "..") or any(character in name for character in "/\\\0"):
        raise UserError(f"{source}, {where}: {name!r} is not a plain name (one path component, no '..', "
                        f"no '/' or '\\'); refusing to read or write outside the dataset and output folders")
    return name


def natural_key(path: Path) -> list:
    """Sort key that orders the numbers inside a file name by value (frame_2 before frame_10)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def image_size(path: str | Path) -> tuple[int, int]:
    """(H, W) of an image file from its header, without decoding the pixels."""
    try:
        with Image.open(path) as image:
            return image.height, image.width
    except (OSError, UnidentifiedImageError) as error:
        raise DataFileError(f"cannot read image {path}: {error}") from error


def check_mask_size(mask_path: Path, mask_size: tuple[int, int], frame_path: Path,
                    frame_size: tuple[int, int]) -> None:
    """A mask of (H, W) `mask_size` against its frame's `frame_size`: DataFileError naming both."""
    if tuple(mask_size) != tuple(frame_size):
        raise DataFileError(f"mask {mask_path} is {mask_size[1]}x{mask_size[0]}, "
                            f"its frame {frame_path} is {frame_size[1]}x{frame_size[0]}")


def check_frame_and_mask(frame_path: Path, mask_path: Path | None) -> None:
    """Both files readable, and of the same size (headers only; a DataFileError names the paths)."""
    frame_size = image_size(frame_path)
    if mask_path is not None:
        check_mask_size(mask_path, image_size(mask_path), frame_path, frame_size)


@functools.lru_cache(maxsize=4)
def voc_palette(num_colors: int = 256) -> tuple[int, ...]:
    """PASCAL-VOC colour map as a flat [r0, g0, b0, r1, ...] list (the bits of the index spread
    into the top bits of R, G and B)."""
    palette = []
    for index in range(num_colors):
        red = green = blue = 0
        bits = index
        for shift in range(7, -1, -1):
            red |= (bits & 1) << shift
            green |= ((bits >> 1) & 1) << shift
            blue |= ((bits >> 2) & 1) << shift
            bits >>= 3
        palette.extend((red, green, blue))
    return tuple(palette)


def read_rgb(path: str | Path) -> np.ndarray:
    """An image file as a uint8 (H, W, 3) RGB array."""
    try:
        with Image.open(path) as image:
            return np.array(image if image.mode == "RGB" else image.convert("RGB"))  # convert copies
    except (OSError, UnidentifiedImageError) as error:
        raise DataFileError(f"cannot read image {path}: {error}") from error


def read_mask(path: str | Path) -> np.ndarray:
    """A mask file as a uint8 (H, W) array of label ids (palette indices for palette PNGs; 1 for
    every non-white pixel of an FBMS .ppm)."""
    try:
        with Image.open(path) as image:
            if Path(path).suffix.lower() in WHITE_BACKGROUND_SUFFIXES:
                return (np.array(image.convert("RGB")) != 255).any(axis=2).astype(np.uint8)
            if image.mode not in ("P", "L", "1"):
                image = image.convert("L")
            return np.array(image, dtype=np.uint8)
    except (OSError, UnidentifiedImageError) as error:
        raise DataFileError(f"cannot read mask {path}: {error}") from error


def write_palette_png(path: str | Path, labels: np.ndarray, **png_options) -> None:
    """Write a uint8 (H, W) label map as a palette PNG with the VOC colour map; png_options: PIL's
    (e.g. compress_level, compress_type: zlib's level and strategy; the pixels are the same)."""
    image = Image.fromarray(np.asarray(labels, dtype=np.uint8))
    image.putpalette(voc_palette())
    atomic_write(path, lambda tmp: image.save(tmp, format="PNG", **png_options))


def write_jpeg(path: str | Path, rgb: np.ndarray, quality: int = 95) -> None:
    """Write a uint8 (H, W, 3) RGB array as a JPEG file."""
    image = Image.fromarray(np.asarray(rgb, dtype=np.uint8))
    atomic_write(path, lambda tmp: image.save(tmp, format="JPEG", quality=quality))


def read_prediction(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(labels uint8 0/1, grey uint8 0-255) of a prediction file."""
    with Image.open(path) as image:
        if image.mode in ("P", "1"):
            labels = (np.array(image) != 0).astype(np.uint8)
            return labels, labels * 255
        grey = np.array(image.convert("L"))
    if grey.max() <= 1:
        return grey, grey * 255
    return (grey >= 128).astype(np.uint8), grey
