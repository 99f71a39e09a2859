"""FBMS-59, as downloaded or in the original 3DC-Seg loader's converted layout.

As downloaded (FBMS_Trainingset.zip / FBMS_Testset.zip unpacked into ROOT):

    ROOT/Testset/<sequence>/<sequence>_<number>.jpg        (split "Testset" or "Trainingset")
    ROOT/Testset/<sequence>/<sequence>.bmf                 (frame list: a header line, then one file per line)
    ROOT/Testset/<sequence>/GroundTruth/<sequence>_<number>_gt.ppm   (sparse; white background, a colour per object)
                                       or *.pgm                      (sparse; black background, a gray level per object)

Converted (what `python -m datasets.fbms convert ROOT OUT` writes, and the original read):

    ROOT/Testset/<sequence>/<sequence>_<number>.jpg
    ROOT/inst/test/<sequence>/<sequence>_<number>.png      (sparse; "inst/train" for Trainingset)

A sequence's masks come from inst/ when that folder exists for it, else from its GroundTruth
folder. Every object is foreground. Ground truth is matched to frames by the number in its name
(`<sequence>_<number>...`, zero padding ignored); `*PROB*` files of the download are skipped.
Frames follow the .bmf list when there is one, else their numbers (the original used unsorted
glob order, defect 20).
"""

import logging
import re
import runpy
import shutil
from pathlib import Path

import numpy as np
from tqdm import tqdm

from datasets.io import check_plain_name, read_mask, write_palette_png
from datasets.sequence import Sequence, check_sequence
from utils.errors import UserError
from utils.files import atomic_write

logger = logging.getLogger(__name__)

MASK_DIRS = {"Testset": "inst/test", "Trainingset": "inst/train"}
GROUND_TRUTH_SUFFIXES = (".ppm", ".pgm")


def frame_number(path: Path) -> int:
    match = re.search(r"(\d+)$", path.stem)
    if match is None:
        raise UserError(f"FBMS frame name has no frame number: {path}")
    return int(match.group(1))


def ground_truth_number(path: Path, sequence: str) -> int:
    """The frame number of a ground-truth file: the first number after the sequence name."""
    name = path.name[len(sequence):] if path.name.startswith(sequence) else path.name
    match = re.search(r"(\d+)", name)
    if match is None:
        raise UserError(f"FBMS ground-truth file name has no frame number: {path}")
    return int(match.group(1))


def list_frames(folder: Path) -> tuple[Path, ...]:
    """Frames in the order of <sequence>.bmf (its names with .jpg), else sorted by number."""
    bmf = folder / f"{folder.name}.bmf"
    if not bmf.is_file():
        return tuple(sorted(folder.glob("*.jpg"), key=frame_number))
    names = [check_plain_name(line.split()[0], bmf, f"line {number}")
             for number, line in enumerate(bmf.read_text().splitlines()[1:], start=2) if line.strip()]
    frame_paths = tuple(folder / f"{Path(name).stem}.jpg" for name in names)
    for path in frame_paths:
        if not path.is_file():
            raise UserError(f"{bmf} lists {path.name}, which is not in {folder}")
    return frame_paths


def downloaded_masks(folder: Path, numbers: list[int]) -> dict[int, Path]:
    """Frame index -> GroundTruth/*.ppm|pgm file, matched by frame number."""
    index_of = {number: index for index, number in enumerate(numbers)}
    mask_paths, unmatched = {}, []
    for path in sorted((folder / "GroundTruth").iterdir()):
        if path.suffix.lower() not in GROUND_TRUTH_SUFFIXES or "PROB" in path.name:
            continue
        number = ground_truth_number(path, folder.name)
        if number in index_of:
            mask_paths[index_of[number]] = path
        else:
            unmatched.append(path.name)
    if unmatched and not mask_paths:
        raise UserError(f"no ground-truth file in {folder / 'GroundTruth'} matches a frame number of "
                        f"{folder} (e.g. {unmatched[0]})")
    if unmatched:
        logger.warning("FBMS %s: %d ground-truth files match no frame number (e.g. %s)",
                       folder.name, len(unmatched), unmatched[0])
    return mask_paths


def converted_masks(mask_folder: Path, frame_paths) -> dict[int, Path]:
    """Frame index -> inst/<split>/<sequence>/<frame stem>.png."""
    mask_paths = {index: mask_folder / f"{path.stem}.png" for index, path in enumerate(frame_paths)
                  if (mask_folder / f"{path.stem}.png").is_file()}
    if not mask_paths and any(mask_folder.glob("*.png")):
        raise UserError(f"no mask in {mask_folder} is named like a frame of {frame_paths[0].parent}")
    return mask_paths


def index_fbms(root, split: str) -> list[Sequence]:
    """Every sequence folder of ROOT/<split> with .jpg frames, sorted by name."""
    root = Path(root)
    if split not in MASK_DIRS:
        raise UserError(f"FBMS split must be one of {', '.join(MASK_DIRS)}, got '{split}'")
    frame_root = root / split
    if not frame_root.is_dir():
        raise UserError(f"FBMS frames not found: {frame_root}")
    sequences = []
    for folder in sorted(p for p in frame_root.iterdir() if p.is_dir()):
        frame_paths = list_frames(folder)
        if not frame_paths:
            raise UserError(f"FBMS sequence folder has no .jpg frames: {folder}")
        numbers = tuple(frame_number(path) for path in frame_paths)
        mask_folder = root / MASK_DIRS[split] / folder.name
        if mask_folder.is_dir():
            mask_paths, ground_truth = converted_masks(mask_folder, frame_paths), f"FBMS {MASK_DIRS[split]} PNG (converted)"
        elif (folder / "GroundTruth").is_dir():
            mask_paths, ground_truth = downloaded_masks(folder, list(numbers)), "FBMS GroundTruth .ppm/.pgm"
        else:
            mask_paths, ground_truth = {}, "none"
        sequence = Sequence(folder.name, frame_paths, mask_paths, frame_numbers=numbers,
                            ground_truth=ground_truth)
        check_sequence(sequence)
        sequences.append(sequence)
    if not sequences:
        raise UserError(f"no FBMS sequence folders under {frame_root}")
    converted_root = root / MASK_DIRS[split]
    if not any(s.mask_paths for s in sequences) and converted_root.is_dir() and any(converted_root.iterdir()):
        raise UserError(f"no folder in {converted_root} is named like a sequence of {frame_root}")
    return sequences


def convert(root: Path, out: Path) -> int:
    """Write the converted layout (frames copied, masks as 0/1 palette PNGs named like their
    frames) of every split of an official FBMS tree; returns the number of masks written."""
    splits = [split for split in MASK_DIRS if (root / split).is_dir()]
    if not splits:
        raise UserError(f"no FBMS split folder ({' or '.join(MASK_DIRS)}) in {root}")
    written = 0
    for split in splits:
        sequences = index_fbms(root, split)
        for sequence in tqdm(sequences, desc=f"convert {split}", unit="sequence"):
            for path in sequence.frame_paths:
                target = out / split / sequence.name / path.name
                atomic_write(target, lambda tmp, source=path: shutil.copyfile(source, tmp))
            for index, mask_path in sequence.mask_paths.items():
                labels = (read_mask(mask_path) != 0).astype(np.uint8)
                write_palette_png(out / MASK_DIRS[split] / sequence.name / f"{sequence.frame_name(index)}.png",
                                  labels)
                written += 1
    return written


if __name__ == "__main__":  # the command's former name: python -m datasets.fbms
    runpy.run_module("tools.fbms", run_name="__main__", alter_sys=True)
