"""DAVIS as downloaded: the DAVIS-2016 release and the DAVIS-2017 releases.

    ROOT/JPEGImages/480p/<sequence>/00000.jpg ...
    ROOT/Annotations_unsupervised/480p/<sequence>/00000.png ...  (DAVIS-2017 unsupervised: palette ids)
    ROOT/Annotations/480p/<sequence>/00000.png ...               (DAVIS-2016: 0/255; DAVIS-2017 semi-supervised: palette ids)
    ROOT/ImageSets/2016/val.txt, 2017/train.txt ...              (one sequence name per line)
    ROOT/ImageSets/480p/train.txt, val.txt                       (DAVIS-2016 release: "<frame path> <mask path>" per line)

Any non-zero id is foreground, so every object of a multi-object mask is merged. Which
annotation folder is read: `annotations` (data.davis.annotations), see `annotation_folder`.
"""

import logging
from pathlib import Path

from PIL import Image

from datasets.io import check_plain_name
from datasets.sequence import Sequence, check_sequence
from utils.errors import UserError

logger = logging.getLogger(__name__)

FRAME_DIR = Path("JPEGImages/480p")
ANNOTATION_DIRS = {"unsupervised": Path("Annotations_unsupervised/480p"),
                   "semi_supervised": Path("Annotations/480p")}


def read_sequence_list(root: Path, split: str) -> list[str]:
    """Sequence names of ROOT/ImageSets/<split> (read_sequence_file). A 2016/<name> split that is
    missing is read from ImageSets/480p/<name> when that exists."""
    list_path = root / "ImageSets" / split
    release_2016 = root / "ImageSets/480p" / Path(split).name
    if not list_path.is_file() and Path(split).parts[0] == "2016" and release_2016.is_file():
        list_path = release_2016  # the DAVIS-2016 release names its lists ImageSets/480p/train|val.txt
    if not list_path.is_file():
        raise UserError(f"DAVIS sequence list not found: {list_path}")
    return read_sequence_file(list_path)


def read_sequence_file(list_path: Path) -> list[str]:
    """Sequence names of a DAVIS list file, in file order: one name per line, or (DAVIS-2016
    ImageSets/480p) one "<frame path> <mask path>" pair per frame, named by the frame's folder.
    Every name must be a plain name (datasets.io.check_plain_name)."""
    names = []
    for number, line in enumerate(Path(list_path).read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        name = Path(fields[0]).parent.name if len(fields) > 1 else fields[0]
        if check_plain_name(name, list_path, f"line {number}") not in names:
            names.append(name)
    if not names:
        raise UserError(f"DAVIS sequence list is empty: {list_path}")
    return names


def is_2016_split(split: str) -> bool:
    return Path(split).parts[0] in ("2016", "480p")


def annotation_folder(root: Path, split: str, annotations: str) -> Path:
    """The folder of masks: `unsupervised` and `semi_supervised` name it; `auto` takes
    Annotations/480p for a 2016 split when it exists (the DAVIS-2016 ground truth; the original
    read the unsupervised masks, SPEC 11 defect 22), otherwise Annotations_unsupervised/480p when
    it exists, otherwise Annotations/480p."""
    if annotations != "auto":
        return root / ANNOTATION_DIRS[annotations]
    semi, unsupervised = root / ANNOTATION_DIRS["semi_supervised"], root / ANNOTATION_DIRS["unsupervised"]
    if is_2016_split(split) and semi.is_dir():
        return semi
    return unsupervised if unsupervised.is_dir() else semi


def describe_annotations(mask_root: Path, first_mask: Path | None) -> str:
    """A short description of the annotation source for reports."""
    relative = mask_root.relative_to(mask_root.parents[1])
    if relative.parts[0] == "Annotations_unsupervised":
        return f"DAVIS-2017 {relative.as_posix()}"
    if first_mask is None:
        return f"DAVIS {relative.as_posix()}"
    with Image.open(first_mask) as image:
        palette = image.mode == "P"
    if palette:
        return f"DAVIS-2017 {relative.as_posix()} (palette ids, objects merged)"
    return f"DAVIS-2016 {relative.as_posix()} (0/255)"


def warn_2017_masks_on_2016_split(split: str, annotations: str, ground_truth: str) -> None:
    """`auto` on a 2016 split of a DAVIS-2017 tree reads the 2017 semi-supervised masks: say so."""
    if annotations == "auto" and is_2016_split(split) and ground_truth.startswith("DAVIS-2017 Annotations/"):
        logger.warning("DAVIS split %s: data.davis.annotations auto read the DAVIS-2017 semi-supervised %s, "
                       "which are neither the DAVIS-2016 ground truth nor the original's "
                       "Annotations_unsupervised masks; for DAVIS-2016 scores use the DAVIS-2016 release as the "
                       "root, for the original's masks set data.davis.annotations=unsupervised", split, ground_truth)


def index_davis(root, split: str, annotations: str = "auto") -> list[Sequence]:
    """Sequences listed in ROOT/ImageSets/<split>, in file order; masks from
    `annotation_folder(root, split, annotations)`."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"DAVIS root not found: {root}")
    mask_root = annotation_folder(root, split, annotations)
    sequences = []
    for name in read_sequence_list(root, split):
        frame_folder = root / FRAME_DIR / name
        if not frame_folder.is_dir():
            raise UserError(f"DAVIS sequence '{name}' of ImageSets/{split} is not on disk: {frame_folder}")
        frame_paths = tuple(sorted(frame_folder.glob("*.jpg")))
        if not frame_paths:
            raise UserError(f"DAVIS sequence '{name}' has no frames in {frame_folder}")
        mask_paths = {}
        for index, frame_path in enumerate(frame_paths):
            mask_path = mask_root / name / f"{frame_path.stem}.png"
            if mask_path.is_file():
                mask_paths[index] = mask_path
        if not mask_paths and any((mask_root / name).glob("*.png")):
            raise UserError(f"no mask in {mask_root / name} is named like a frame of {frame_folder}")
        sequences.append(Sequence(name=name, frame_paths=frame_paths, mask_paths=mask_paths))
    for sequence in sequences:
        check_sequence(sequence)
    first_mask = next((s.mask_paths[s.annotated_indices[0]] for s in sequences if s.mask_paths), None)
    ground_truth = describe_annotations(mask_root, first_mask)
    warn_2017_masks_on_2016_split(split, annotations, ground_truth)
    return [Sequence(s.name, s.frame_paths, s.mask_paths, ground_truth=ground_truth) for s in sequences]
