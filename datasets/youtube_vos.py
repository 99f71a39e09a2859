"""YouTube-VOS 2018 / 2019 as downloaded:

    ROOT/<split>/JPEGImages/<video>/00000.jpg, 00005.jpg, ...   (split: train | valid | train_all_frames)
    ROOT/<split>/Annotations/<video>/00000.png, ...             (palette PNGs, object ids 1..N)
    ROOT/<split>/CleanedAnnotations/<video>/...                 (read instead, for a video that has it)
    ROOT/<split>/meta.json                                      (optional; every video it lists must be on disk)

Frame numbers are not contiguous (every 5th frame of the 30 fps source; every frame in
train_all_frames, whose download has no annotations: those of train/ are read, every 5th frame).
`valid` annotates only the frame where each object first appears. Videos and frames are in
numeric order; frame numbers are kept for output names (`inference.mask_names: original_index`).
Every object id is foreground. A video shorter than a clip gets copies of the clip's first frame
(datasets/clip_sampling.py); the window of frames a clip is drawn from is at least clip_length
frames long (the original ignored clip_length there, SPEC 11 defect 19).
"""

import json
from pathlib import Path

from datasets.io import check_plain_name, natural_key
from datasets.sequence import Sequence, check_sequence
from utils.errors import UserError

ANNOTATIONS_OF = {"train_all_frames": "train"}  # splits whose download has no annotations of its own
ANNOTATION_DIRS = ("CleanedAnnotations", "Annotations")  # first one present for a video wins


def check_meta(split_root: Path, frame_root: Path) -> None:
    """Every video listed in <split>/meta.json has a frame folder."""
    meta_path = split_root / "meta.json"
    if not meta_path.is_file():
        return
    try:
        videos = json.loads(meta_path.read_text())["videos"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise UserError(f"cannot read the video list of {meta_path}: {error}") from error
    for name in videos:
        check_plain_name(name, meta_path, '"videos" key')
        if not (frame_root / name).is_dir():
            raise UserError(f"{meta_path} lists video '{name}', which is not on disk: {frame_root / name}")


def mask_folder(annotation_root: Path, name: str) -> Path | None:
    for folder in ANNOTATION_DIRS:
        if (annotation_root / folder / name).is_dir():
            return annotation_root / folder / name
    return None


def index_youtube_vos(root, split: str) -> list[Sequence]:
    """Every video of ROOT/<split>/JPEGImages, with the masks named like its frames."""
    root = Path(root)
    split_root = root / split
    frame_root = split_root / "JPEGImages"
    if not frame_root.is_dir():
        raise UserError(f"YouTube-VOS frames not found: {frame_root} (split: train | valid | train_all_frames)")
    check_meta(split_root, frame_root)
    annotation_root = root / ANNOTATIONS_OF.get(split, split)
    sequences = []
    for folder in sorted((p for p in frame_root.iterdir() if p.is_dir()), key=natural_key):
        frame_paths = tuple(sorted(folder.glob("*.jpg"), key=natural_key))
        if not frame_paths:
            raise UserError(f"YouTube-VOS video has no .jpg frames: {folder}")
        masks = mask_folder(annotation_root, folder.name)
        mask_paths = {}
        if masks is not None:
            mask_paths = {index: masks / f"{path.stem}.png" for index, path in enumerate(frame_paths)
                          if (masks / f"{path.stem}.png").is_file()}
            if not mask_paths and any(masks.glob("*.png")):
                raise UserError(f"no mask in {masks} is named like a frame of {folder}")
        numbers = tuple(int(path.stem) if path.stem.isdigit() else index
                        for index, path in enumerate(frame_paths))
        ground_truth = (f"YouTube-VOS {masks.parent.relative_to(root).as_posix()} (palette ids, objects merged)"
                        if masks is not None else "none")
        sequence = Sequence(folder.name, frame_paths, mask_paths, frame_numbers=numbers,
                            ground_truth=ground_truth)
        check_sequence(sequence)
        sequences.append(sequence)
    if not sequences:
        raise UserError(f"no YouTube-VOS videos under {frame_root}")
    return sequences
