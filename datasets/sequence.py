"""The record every data source produces: one `Sequence` per video."""

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Sequence:
    """A video on disk.

    name: sequence name (output folder name); frame_paths: all frames in temporal order;
    mask_paths: frame index -> ground-truth mask file, for annotated frames only.
    """

    name: str
    frame_paths: tuple[Path, ...]
    mask_paths: dict[int, Path]

    @property
    def num_frames(self) -> int:
        return len(self.frame_paths)

    @property
    def annotated_indices(self) -> list[int]:
        return sorted(self.mask_paths)

    def frame_name(self, index: int) -> str:
        """File stem of frame `index`, used to name its output mask."""
        return self.frame_paths[index].stem
