"""FBMS-59 in the layout of the original 3DC-Seg loader (ground truth converted to PNG):

    ROOT/Testset/<sequence>/<sequence>_<number>.jpg          (split "Testset" or "Trainingset")
    ROOT/inst/test/<sequence>/<sequence>_<number>.png        (sparse: annotated frames only)

Frames are ordered by the number in their name (the original used unsorted glob order, defect 20).
"""

import re
from pathlib import Path

from datasets.sequence import Sequence
from utils.errors import UserError

MASK_DIRS = {"Testset": "inst/test", "Trainingset": "inst/train"}


def frame_number(path: Path) -> int:
    match = re.search(r"(\d+)$", path.stem)
    if match is None:
        raise UserError(f"FBMS frame name has no frame number: {path}")
    return int(match.group(1))


def index_fbms(root, split: str) -> list[Sequence]:
    root = Path(root)
    if split not in MASK_DIRS:
        raise UserError(f"FBMS split must be one of {', '.join(MASK_DIRS)}, got '{split}'")
    frame_root = root / split
    if not frame_root.is_dir():
        raise UserError(f"FBMS frames not found: {frame_root}")
    sequences = []
    for folder in sorted(p for p in frame_root.iterdir() if p.is_dir()):
        frame_paths = tuple(sorted(folder.glob("*.jpg"), key=frame_number))
        if not frame_paths:
            continue
        mask_folder = root / MASK_DIRS[split] / folder.name
        mask_paths = {index: mask_folder / f"{path.stem}.png" for index, path in enumerate(frame_paths)
                      if (mask_folder / f"{path.stem}.png").is_file()}
        sequences.append(Sequence(folder.name, frame_paths, mask_paths,
                                  frame_numbers=tuple(frame_number(path) for path in frame_paths)))
    if not sequences:
        raise UserError(f"no FBMS sequences with .jpg frames under {frame_root}")
    return sequences
