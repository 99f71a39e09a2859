"""ViSal in the layout of the original 3DC-Seg loader:

    ROOT/ViSal/<sequence>/<frame>.bmp | .png     (frames: sorted .bmp files, then sorted .png files)
    ROOT/GroundTruth/<frame file name>           (flat folder; only some frames are annotated)

Output masks keep the frame's file stem (the original numbered them, defect 33).
"""

from pathlib import Path

from datasets.sequence import Sequence
from utils.errors import UserError


def index_visal(root, split: str = "") -> list[Sequence]:
    """All sequences under ROOT/ViSal (the split name is not used: ViSal is one test set)."""
    root = Path(root)
    frame_root, truth_root = root / "ViSal", root / "GroundTruth"
    if not frame_root.is_dir():
        raise UserError(f"ViSal frames not found: {frame_root}")
    sequences = []
    for folder in sorted(p for p in frame_root.iterdir() if p.is_dir()):
        frame_paths = tuple(sorted(folder.glob("*.bmp")) + sorted(folder.glob("*.png")))
        if not frame_paths:
            continue
        mask_paths = {index: truth_root / path.name for index, path in enumerate(frame_paths)
                      if (truth_root / path.name).is_file()}
        sequences.append(Sequence(folder.name, frame_paths, mask_paths))
    if not sequences:
        raise UserError(f"no ViSal sequences with .bmp/.png frames under {frame_root}")
    return sequences
