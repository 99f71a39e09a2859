"""Reading and writing frames and masks (written atomically, see utils/files.py).

Masks are palette PNGs whose pixel values are label ids (0 = background); the palette is the
PASCAL-VOC colour map that DAVIS uses, so index 1 is dark red (128, 0, 0).
"""

from pathlib import Path

import numpy as np
from PIL import Image

from utils.files import atomic_write


def voc_palette(num_colors: int = 256) -> list[int]:
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
    return palette


def read_rgb(path: str | Path) -> np.ndarray:
    """An image file as a uint8 (H, W, 3) RGB array."""
    with Image.open(path) as image:
        return np.array(image.convert("RGB"))


def read_mask(path: str | Path) -> np.ndarray:
    """A mask file as a uint8 (H, W) array of label ids (palette indices for palette PNGs)."""
    with Image.open(path) as image:
        if image.mode not in ("P", "L", "1"):
            image = image.convert("L")
        return np.array(image, dtype=np.uint8)


def write_palette_png(path: str | Path, labels: np.ndarray) -> None:
    """Write a uint8 (H, W) label map as a palette PNG with the VOC colour map."""
    image = Image.fromarray(np.asarray(labels, dtype=np.uint8))
    image.putpalette(voc_palette())
    atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))


def write_jpeg(path: str | Path, rgb: np.ndarray, quality: int = 95) -> None:
    """Write a uint8 (H, W, 3) RGB array as a JPEG file."""
    image = Image.fromarray(np.asarray(rgb, dtype=np.uint8))
    atomic_write(path, lambda tmp: image.save(tmp, format="JPEG", quality=quality))
