"""A synthetic video object segmentation dataset, in the DAVIS layout, that only motion can solve.

Every sequence shows a static, textured background (smoothed random colour noise) with one or
more copies of the same textured sprite on it. Exactly one copy moves (at constant speed,
bouncing off the frame borders); it is the foreground, label 1. The other copies (distractors)
stand still. Because the distractors are pixel-identical copies of the moving sprite and the
background has the same colour statistics, no single frame tells foreground from distractor: a
per-frame appearance model can at best guess (J around 0.5 with one distractor), whereas a
model that looks at several frames (such as a 3D CNN) can find the object that moves.

The moving sprite is drawn on top of the distractors; each frame's mask marks its visible pixels.
Small Gaussian pixel noise is added per frame so that frames are never bit-identical. Each
sequence is drawn from its own generator, seeded from (seed, split, sequence index), so the same
arguments give byte-identical files and the val set does not depend on `num_train`.

Run as `python -m datasets.synthetic ROOT --num-train 300 --num-val 30 --num-frames 16
--height 64 --width 96 --seed 0`.
"""

import glob
import json
import logging
import os
import runpy
import shutil
from pathlib import Path
from typing import NamedTuple

import numpy as np
from scipy.ndimage import gaussian_filter
from tqdm import tqdm

from datasets.io import write_jpeg, write_palette_png
from utils.errors import UserError
from utils.files import holder_text, lock_file, os_error_text

logger = logging.getLogger(__name__)

SPLITS = ("train", "val")
PIXEL_NOISE_SIGMA = 3.0
BACKGROUND_SMOOTHING = 2.5
SPRITE_SMOOTHING = 1.0
SPRITE_COLOUR_OFFSET = 70.0  # sprites stand out from the background; only motion tells the copies apart
SPRITE_SIZE_RANGE = (0.3, 0.5)  # sprite height as a fraction of the frame height
SPEED_RANGE = (1.5, 4.0)  # pixels per frame
PLACEMENT_ATTEMPTS = 50
MARKER = ".complete.json"  # written last: its presence means the dataset is whole (with the settings it was made with)
TMP_INFIX = ".tmp-"  # <root name>.tmp-<pid>: the folder a generation writes before renaming it to root


class RenderedSequence(NamedTuple):
    """One rendered sequence before noise and encoding. Masks are bool; positions are the
    (top, left) corners of the sprite box."""

    frames: np.ndarray  # (T, H, W, 3) uint8, noise-free
    fg_masks: np.ndarray  # (T, H, W) visible pixels of the moving sprite
    distractor_masks: np.ndarray  # (T, D, H, W) visible pixels of each distractor
    sprite_rgb: np.ndarray  # (h, w, 3) uint8
    sprite_mask: np.ndarray  # (h, w)
    fg_positions: np.ndarray  # (T, 2) int
    distractor_positions: np.ndarray  # (D, 2) int


def colour_texture(rng: np.random.Generator, height: int, width: int, smoothing: float,
                   mean_colour: np.ndarray) -> np.ndarray:
    """Smoothed colour noise around `mean_colour`, as a uint8 (height, width, 3) array."""
    noise = gaussian_filter(rng.standard_normal((height, width, 3)), sigma=(smoothing, smoothing, 0))
    noise = (noise - noise.mean(axis=(0, 1))) / (noise.std(axis=(0, 1)) + 1e-8)
    contrast = rng.uniform(25.0, 45.0)
    return np.clip(np.rint(mean_colour + contrast * noise), 0, 255).astype(np.uint8)


def blob_mask(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A rotated ellipse with a wobbly outline that fills most of a (height, width) box."""
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    y = (rows + 0.5) / height * 2.0 - 1.0
    x = (cols + 0.5) / width * 2.0 - 1.0
    angle = rng.uniform(0.0, np.pi)
    u, v = x * np.cos(angle) + y * np.sin(angle), -x * np.sin(angle) + y * np.cos(angle)
    radius, theta = np.hypot(u, v), np.arctan2(v, u)
    outline = 0.9 * np.ones_like(radius)
    for harmonic in (2, 3):
        outline += rng.uniform(0.0, 0.12) * np.cos(harmonic * theta + rng.uniform(0.0, 2 * np.pi))
    return radius <= outline


def bounce(start: np.ndarray, velocity: np.ndarray, num_frames: int, limit: np.ndarray) -> np.ndarray:
    """(num_frames, 2) positions of a point moving at `velocity` inside [0, limit], reflected at
    the borders (a triangle wave)."""
    unfolded = start + np.arange(num_frames)[:, None] * velocity
    period = 2.0 * np.maximum(limit, 1e-8)
    folded = np.mod(unfolded, period)
    return np.where(folded > limit, period - folded, folded)


def place_distractors(rng, fg_start, limit, box_size, num_distractors) -> np.ndarray:
    """(D, 2) integer corners for the distractors, avoiding the moving sprite's frame-0 box."""
    positions = []
    for _ in range(num_distractors):
        for _ in range(PLACEMENT_ATTEMPTS):
            candidate = rng.integers(0, limit + 1)
            if np.any(np.abs(candidate - fg_start) >= box_size):  # the boxes do not overlap
                break
        positions.append(candidate)
    return np.array(positions, dtype=np.int64).reshape(num_distractors, 2)


def sprite_slices(sprite_mask: np.ndarray, top_left) -> tuple[slice, slice]:
    """The rows and columns of the frame that the sprite box covers at `top_left`."""
    top, left = int(top_left[0]), int(top_left[1])
    return slice(top, top + sprite_mask.shape[0]), slice(left, left + sprite_mask.shape[1])


def paste(canvas: np.ndarray, sprite_rgb: np.ndarray, sprite_mask: np.ndarray, top_left) -> None:
    """Draw the sprite's pixels onto the (H, W, 3) canvas in place."""
    canvas[sprite_slices(sprite_mask, top_left)][sprite_mask] = sprite_rgb[sprite_mask]


def footprint(sprite_mask: np.ndarray, top_left, height: int, width: int) -> np.ndarray:
    """The (height, width) bool mask of the pixels the sprite covers at `top_left`."""
    covered = np.zeros((height, width), dtype=bool)
    covered[sprite_slices(sprite_mask, top_left)] = sprite_mask
    return covered


def draw_sprite(rng: np.random.Generator, frame_height: int, frame_width: int,
                scene_colour: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A random textured blob: its (h, w, 3) uint8 colours and its (h, w) bool shape."""
    sprite_height = max(3, int(round(rng.uniform(*SPRITE_SIZE_RANGE) * frame_height)))
    sprite_width = min(frame_width, max(3, int(round(sprite_height * rng.uniform(0.8, 1.5)))))
    sprite_mask = blob_mask(rng, sprite_height, sprite_width)
    sprite_colour = scene_colour + rng.uniform(-SPRITE_COLOUR_OFFSET, SPRITE_COLOUR_OFFSET, size=3)
    sprite_rgb = colour_texture(rng, sprite_height, sprite_width, SPRITE_SMOOTHING, sprite_colour)
    return sprite_rgb, sprite_mask


def render_sequence(rng: np.random.Generator, num_frames: int, height: int, width: int,
                    num_distractors: int) -> RenderedSequence:
    """Draw and render one noise-free sequence: static background and distractors, one moving
    copy of the same sprite drawn on top."""
    scene_colour = rng.uniform(60.0, 195.0, size=3)
    background = colour_texture(rng, height, width, BACKGROUND_SMOOTHING, scene_colour)
    sprite_rgb, sprite_mask = draw_sprite(rng, height, width, scene_colour)
    box_size = np.array(sprite_mask.shape)
    limit = np.array([height, width]) - box_size
    speed, heading = rng.uniform(*SPEED_RANGE), rng.uniform(0.0, 2 * np.pi)
    velocity = speed * np.array([np.sin(heading), np.cos(heading)])
    fg_positions = np.rint(bounce(rng.uniform(0, limit), velocity, num_frames, limit)).astype(np.int64)
    distractor_positions = place_distractors(rng, fg_positions[0], limit, box_size, num_distractors)

    static_scene = background.copy()
    footprints = np.zeros((num_distractors, height, width), dtype=bool)
    for index, position in enumerate(distractor_positions):
        footprints[index] = footprint(sprite_mask, position, height, width)
        footprints[:index] &= ~footprints[index]
        paste(static_scene, sprite_rgb, sprite_mask, position)

    frames = np.repeat(static_scene[None], num_frames, axis=0)
    for frame, position in zip(frames, fg_positions):
        paste(frame, sprite_rgb, sprite_mask, position)
    fg_masks = np.stack([footprint(sprite_mask, position, height, width) for position in fg_positions])
    distractor_masks = footprints[None] & ~fg_masks[:, None]
    return RenderedSequence(frames, fg_masks, distractor_masks, sprite_rgb, sprite_mask,
                            fg_positions, distractor_positions)


def add_pixel_noise(rng: np.random.Generator, frames: np.ndarray,
                    sigma: float = PIXEL_NOISE_SIGMA) -> np.ndarray:
    """Frames plus independent Gaussian noise per pixel, rounded and clipped to uint8."""
    noisy = frames.astype(np.float64) + rng.normal(0.0, sigma, size=frames.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def sequence_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of one sequence, independent of how many sequences the other split has."""
    return np.random.default_rng([seed, SPLITS.index(split), index])


def write_sequence(root: Path, name: str, frames: np.ndarray, masks: np.ndarray) -> None:
    """Write one sequence's JPEG frames and palette PNG masks in the DAVIS layout."""
    image_dir = root / "JPEGImages" / "480p" / name
    mask_dir = root / "Annotations_unsupervised" / "480p" / name
    for frame_index, (frame, mask) in enumerate(zip(frames, masks)):
        write_jpeg(image_dir / f"{frame_index:05d}.jpg", frame)
        write_palette_png(mask_dir / f"{frame_index:05d}.png", mask.astype(np.uint8))


def write_split(root: Path, split: str, count: int, *, seed: int, num_frames: int, height: int,
                width: int, num_distractors: int) -> list[str]:
    """Render and write `count` sequences of one split; return their names."""
    names = [f"{split}_{index:04d}" for index in range(count)]
    for index, name in enumerate(tqdm(names, desc=f"synthetic {split}", unit="seq")):
        rng = sequence_rng(seed, split, index)
        rendered = render_sequence(rng, num_frames, height, width, num_distractors)
        write_sequence(root, name, add_pixel_noise(rng, rendered.frames), rendered.fg_masks)
    return names


def write_image_sets(root: Path, names_by_split: dict[str, list[str]]) -> None:
    """Write the 2016 and 2017 ImageSets lists (identical contents)."""
    for year in ("2016", "2017"):
        folder = root / "ImageSets" / year
        folder.mkdir(parents=True, exist_ok=True)
        for split, names in names_by_split.items():
            (folder / f"{split}.txt").write_text("".join(f"{name}\n" for name in names))


def generate_synthetic_davis(root, *, num_train: int, num_val: int, num_frames: int,
                             height: int, width: int, seed: int, num_distractors: int = 1) -> None:
    """Write the dataset under `root` (a str or Path). The tree is built in a sibling temporary
    folder, which gets the completion marker last and is then renamed to `root`, so `root` is
    either absent or complete; raises ValueError if `root` exists and is not empty, UserError
    naming `root` when the disk refuses a write (full, read-only), after removing the temporary
    folder. Not safe against a second process: `ensure_synthetic_davis` locks."""
    root = Path(root)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise ValueError(f"refusing to generate the synthetic dataset into non-empty {root}: it holds no "
                         f"{MARKER}, the mark of a complete generated dataset (delete it to generate one there)")
    if num_frames < 1 or num_distractors < 0 or min(height, width) < 16:
        raise ValueError("need num_frames >= 1, num_distractors >= 0 and height, width >= 16")
    tmp_root = root.parent / f"{root.name}{TMP_INFIX}{os.getpid()}"
    settings = dict(seed=seed, num_frames=num_frames, height=height, width=width,
                    num_distractors=num_distractors)
    try:
        shutil.rmtree(tmp_root, ignore_errors=True)
        tmp_root.mkdir(parents=True)
        names_by_split = {"train": write_split(tmp_root, "train", num_train, **settings),
                          "val": write_split(tmp_root, "val", num_val, **settings)}
        write_image_sets(tmp_root, names_by_split)
        (tmp_root / MARKER).write_text(json.dumps({"num_train": num_train, "num_val": num_val, **settings}) + "\n")
        if root.exists():
            root.rmdir()
        os.replace(tmp_root, root)
    except (OSError, UserError) as error:
        reason = os_error_text(error) if isinstance(error, OSError) else str(error)
        raise UserError(f"cannot generate the synthetic dataset {root} ({reason}); its temporary copy "
                        f"{tmp_root} was removed: free space or point data.train_root / data.test_root "
                        f"elsewhere") from error
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)


def is_complete(root: Path) -> bool:
    """Whether `root` holds a whole generated dataset (its completion marker is there)."""
    return (root / MARKER).is_file()


def remove_half_made(root: Path) -> None:
    """Delete the temporary folders of generations that were killed (call under the data lock:
    no other process is generating then)."""
    for folder in sorted(root.parent.glob(f"{glob.escape(root.name)}{TMP_INFIX}*")):
        logger.warning("removing %s, the half-made synthetic dataset of a run killed while generating it", folder)
        shutil.rmtree(folder, ignore_errors=True)


def ensure_synthetic_davis(root, **kwargs) -> bool:
    """Generate the dataset unless `root` holds a complete one; return True if this call generated
    it. However many processes call this at once (torchrun's ranks, independent runs sharing the
    data folder), one generates under the lock file `.<root name>.lock` beside `root` and the
    others wait for it, then find it complete. A folder without the completion marker is never
    taken for data: a non-empty one is refused (ValueError). `kwargs` are those of
    `generate_synthetic_davis`."""
    root = Path(root)
    if is_complete(root):
        logger.info("synthetic DAVIS dataset already present at %s", root)
        return False
    try:
        root.parent.mkdir(parents=True, exist_ok=True)
        lock_path = root.parent / f".{root.name}.lock"
        lock = lock_file(lock_path, wait=False)
        if lock is None:
            logger.info("waiting for %s, which is generating the synthetic dataset %s",
                        lock_path.read_text().strip() or "another process", root)
            lock = lock_file(lock_path, wait=True)
    except OSError as error:
        raise UserError(f"cannot generate the synthetic dataset {root}: {os_error_text(error)}") from error
    try:
        if is_complete(root):
            logger.info("synthetic DAVIS dataset present at %s (generated by another process)", root)
            return False
        lock.seek(0)
        lock.truncate()
        lock.write(holder_text() + "\n")
        lock.flush()
        remove_half_made(root)
        logger.info("generating synthetic DAVIS dataset at %s (%s)", root, kwargs)
        generate_synthetic_davis(root, **kwargs)
        logger.info("synthetic DAVIS dataset written to %s", root)
        return True
    finally:
        lock.close()


if __name__ == "__main__":  # the command's former name: python -m datasets.synthetic
    runpy.run_module("tools.generate_synthetic", run_name="__main__", alter_sys=True)
