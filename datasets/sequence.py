"""The record every data source produces: one `Sequence` per video."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from datasets.io import check_frame_and_mask, check_mask_size, read_mask, read_rgb


class Frames:
    """A reader of a sequence's frames (`Sequence.open_frames()`; use it as a context manager);
    `frames[i]` is a uint8 (H, W, 3) RGB array.

    The engine reads frames in increasing order, so a source that decodes a video file can stream
    it instead of holding it in memory. `any_order`: frames may also be read in any order and from
    several threads at once (the engine's reader pool).
    """

    any_order = False

    def __getitem__(self, index: int) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the reader holds (nothing for image files; a decoder for videos)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class ImageFrames(Frames):
    """Frames stored as image files."""

    any_order = True

    def __init__(self, frame_paths):
        self.frame_paths = frame_paths

    def __getitem__(self, index: int) -> np.ndarray:
        return read_rgb(self.frame_paths[index])


@dataclass(frozen=True)
class Sequence:
    """A video on disk.

    name: sequence name (output folder name); frame_paths: all frames in temporal order;
    mask_paths: frame index -> ground-truth mask file, for annotated frames only;
    frame_numbers: the number the original code gave each frame when it differs from the
    position (FBMS: the number in the file name); None means the position; ground_truth: a
    short description of the annotation source that metrics reports repeat.
    """

    name: str
    frame_paths: tuple[Path, ...]
    mask_paths: dict[int, Path]
    frame_numbers: tuple[int, ...] | None = None
    ground_truth: str = ""  # which annotations mask_paths point to, for reports (e.g. "DAVIS-2016 Annotations/480p")

    def open_frames(self) -> Frames:
        """A reader of this sequence's frames (use it as a context manager)."""
        return ImageFrames(self.frame_paths)

    @property
    def num_frames(self) -> int:
        return len(self.frame_paths)

    @property
    def annotated_indices(self) -> list[int]:
        return sorted(self.mask_paths)

    def frame_name(self, index: int) -> str:
        """File stem of frame `index`, used to name its output mask."""
        return self.frame_paths[index].stem

    def original_frame_name(self, index: int) -> str:
        """The original code's output name: its frame number, 5 digits (SPEC 10.3)."""
        number = index if self.frame_numbers is None else self.frame_numbers[index]
        return f"{number:05d}"

    def output_name(self, index: int, naming: str) -> str:
        """Name of frame `index`'s mask: 'frame_name' (default) or 'original_index'."""
        return self.original_frame_name(index) if naming == "original_index" else self.frame_name(index)

    def read_mask(self, index: int, frame_shape: tuple[int, int]) -> np.ndarray:
        """uint8 (H, W) label ids of frame `index` (zeros when it has no annotation); a mask whose
        size is not `frame_shape`, the (H, W) of its frame, raises DataFileError naming both files."""
        if index not in self.mask_paths:
            return np.zeros(frame_shape, dtype=np.uint8)
        mask = read_mask(self.mask_paths[index])
        check_mask_size(self.mask_paths[index], mask.shape, self.frame_paths[index], frame_shape)
        return mask


def check_sequence(sequence: Sequence) -> None:
    """The index-time check of one sequence: its first annotated frame and that frame's mask
    (or its first frame, without annotations) are readable and of the same size. Only headers
    are read, so indexing stays fast; any other unreadable file fails when it is read, with one
    line naming it (`datasets.io.DataFileError`)."""
    if sequence.mask_paths:
        first = sequence.annotated_indices[0]
        check_frame_and_mask(sequence.frame_paths[first], sequence.mask_paths[first])
    else:
        check_frame_and_mask(sequence.frame_paths[0], None)
