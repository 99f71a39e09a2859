"""DAVIS layout (2016 / 2017, unsupervised annotations):

    ROOT/JPEGImages/480p/<sequence>/00000.jpg ...
    ROOT/Annotations_unsupervised/480p/<sequence>/00000.png ...   (palette PNG, 0 = background)
    ROOT/ImageSets/<year>/<split>.txt                             (one sequence name per line)
"""

from pathlib import Path

from datasets.sequence import Sequence
from utils.errors import UserError

FRAME_DIR = Path("JPEGImages/480p")
MASK_DIR = Path("Annotations_unsupervised/480p")


def read_sequence_list(root: Path, split: str) -> list[str]:
    list_path = root / "ImageSets" / split
    if not list_path.is_file():
        raise UserError(f"DAVIS sequence list not found: {list_path}")
    names = [line.strip() for line in list_path.read_text().splitlines() if line.strip()]
    if not names:
        raise UserError(f"DAVIS sequence list is empty: {list_path}")
    return names


def index_davis(root, split: str) -> list[Sequence]:
    """Sequences listed in ROOT/ImageSets/<split>, in file order."""
    root = Path(root)
    sequences = []
    for name in read_sequence_list(root, split):
        frame_paths = tuple(sorted((root / FRAME_DIR / name).glob("*.jpg")))
        if not frame_paths:
            raise UserError(f"DAVIS sequence '{name}' has no frames in {root / FRAME_DIR / name}")
        mask_paths = {}
        for index, frame_path in enumerate(frame_paths):
            mask_path = root / MASK_DIR / name / f"{frame_path.stem}.png"
            if mask_path.is_file():
                mask_paths[index] = mask_path
        sequences.append(Sequence(name=name, frame_paths=frame_paths, mask_paths=mask_paths))
    return sequences
