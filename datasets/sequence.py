"""The record every data source produces: one `Sequence` per video."""

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Sequence:
    """A video on disk.

    name: sequence name (output folder name); frame_paths: all frames in temporal order;
    mask_paths: frame index -> ground-truth mask file, for annotated frames only;
    frame_numbers: the number the original code gave each frame when it differs from the
    position (FBMS: the number in the file name); None means the position.
    """

    name: str
    frame_paths: tuple[Path, ...]
    mask_paths: dict[int, Path]
    frame_numbers: tuple[int, ...] | None = None

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
