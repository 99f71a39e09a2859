"""ViSal in either of its two distributed layouts, detected from the tree.

The original 3DC-Seg loader's flat layout:

    ROOT/ViSal/<sequence>/<frame>.bmp | .png     (frames: sorted .bmp files, then sorted .png files)
    ROOT/GroundTruth/<frame file name>           (flat folder; only some frames are annotated)

A ground-truth file belongs to a sequence by the original's prefix rule: its name starts with
the sequence name followed by a character that is not a letter or digit (not a letter for
gokart and snow_leopards), so boat_01.png is not a boat2 file. Each such file must be named
exactly like a frame of that sequence (the original asserted it).

The per-sequence layout of the VSOD toolboxes (DAVSOD evaluation and its followers):

    ROOT[/ViSal]/<sequence>/Imgs/<frame>.jpg | .png | .bmp
    ROOT[/ViSal]/<sequence>/GT_object_level/<frame stem>.png

Output masks keep the frame's file stem (the original numbered them, defect 33).
"""

import logging
from pathlib import Path

from datasets.io import natural_key
from datasets.sequence import Sequence, check_sequence
from utils.errors import UserError

logger = logging.getLogger(__name__)

SEQUENCES = ("aeroplane", "bird", "boat", "boat2", "car", "cat", "cow4", "cow5", "gokart", "horse2",
             "horse3", "lion", "man", "motorbike2", "panda", "rider", "snow_leopards")  # the original's list
DIGIT_MAY_FOLLOW = ("gokart", "snow_leopards")  # prefix rule exceptions of the original
FRAME_SUFFIXES = (".jpg", ".png", ".bmp")


def belongs_to(file_name: str, sequence: str) -> bool:
    """The original's rule: `^<sequence>[^a-zA-Z0-9]` (`[^a-zA-Z]` for DIGIT_MAY_FOLLOW)."""
    if not file_name.startswith(sequence) or len(file_name) == len(sequence):
        return False
    following = file_name[len(sequence)]
    return not following.isalpha() if sequence in DIGIT_MAY_FOLLOW else not following.isalnum()


def index_flat(root: Path) -> list[Sequence]:
    frame_root, truth_root = root / "ViSal", root / "GroundTruth"
    truth_names = sorted(path.name for path in truth_root.iterdir() if path.is_file())
    folders = sorted(p for p in frame_root.iterdir() if p.is_dir())
    missing = [name for name in SEQUENCES if not (frame_root / name).is_dir()]
    if missing:
        logger.warning("ViSal: %d of the 17 sequences are not in %s (e.g. %s)", len(missing), frame_root,
                       missing[0])
    sequences = []
    for folder in folders:
        frame_paths = tuple(sorted(folder.glob("*.bmp")) + sorted(folder.glob("*.png")))
        if not frame_paths:
            raise UserError(f"ViSal sequence folder has no .bmp/.png frames: {folder}")
        index_of = {path.name: index for index, path in enumerate(frame_paths)}
        mask_paths = {}
        for name in truth_names:
            if belongs_to(name, folder.name):
                if name not in index_of:
                    raise UserError(f"ground truth {truth_root / name} belongs to sequence {folder.name} "
                                    f"but no frame in {folder} has that name")
                mask_paths[index_of[name]] = truth_root / name
        sequences.append(Sequence(folder.name, frame_paths, mask_paths,
                                  ground_truth="ViSal GroundTruth (flat, original prefix rule)"))
    return sequences


def index_per_sequence(base: Path) -> list[Sequence]:
    sequences = []
    for folder in sorted(p for p in base.iterdir() if (p / "Imgs").is_dir()):
        frame_paths = tuple(sorted((p for p in (folder / "Imgs").iterdir() if p.suffix.lower() in FRAME_SUFFIXES),
                                   key=natural_key))
        if not frame_paths:
            raise UserError(f"ViSal sequence folder has no .jpg/.png/.bmp frames: {folder / 'Imgs'}")
        truth_folder = folder / "GT_object_level"
        truths = {p.stem: p for p in truth_folder.glob("*.png")} if truth_folder.is_dir() else {}
        mask_paths = {index: truths[path.stem] for index, path in enumerate(frame_paths) if path.stem in truths}
        if truths and not mask_paths:
            raise UserError(f"no ground truth in {truth_folder} is named like a frame of {folder / 'Imgs'}")
        sequences.append(Sequence(folder.name, frame_paths, mask_paths,
                                  ground_truth="ViSal GT_object_level (per sequence)"))
    return sequences


def index_visal(root, split: str = "") -> list[Sequence]:
    """All sequences of either layout (the split name is not used: ViSal is one test set)."""
    root = Path(root)
    if (root / "ViSal").is_dir() and (root / "GroundTruth").is_dir():
        sequences = index_flat(root)
    else:
        base = root / "ViSal" if (root / "ViSal").is_dir() else root
        if not base.is_dir():
            raise UserError(f"ViSal root not found: {root}")
        sequences = index_per_sequence(base)
    if not sequences:
        raise UserError(f"no ViSal sequences under {root}: expected ViSal/<sequence>/ with GroundTruth/, "
                        f"or <sequence>/Imgs/ with <sequence>/GT_object_level/ (docs/data.md)")
    for sequence in sequences:
        check_sequence(sequence)
    return sequences
