"""Score a folder of predictions against ground truth with the code of `--task infer/eval`.

    python -m inference_handlers.evaluate --pred results/bmvc_final --gt data/DAVIS/Annotations/480p \\
        --protocol davis2016 [--frames all|skip_first_last] [--out DIR]
    python -m inference_handlers.evaluate --pred DIR --gt data/DAVIS --dataset davis --split 2016/val.txt
    python -m inference_handlers.evaluate --pred DIR --gt data/DAVIS/Annotations/480p \\
        --split data/DAVIS/ImageSets/480p/val.txt
    python -m inference_handlers.evaluate --pred DIR --gt data/ViSal/GroundTruth --protocol saliency

Predictions: PRED/<sequence>/<frame>.png|.jpg|.bmp, e.g. our masks, our probability PNGs
(results/<name>/probs) or the authors' result zips. Palette or 1-bit images are label maps
(non-zero = foreground); grey images are read as probability = level / 255 (a 0/1 grey image as
a 0/1 mask), foreground where >= 128 for J and F.

Ground truth, one of:
- a mask tree GT/<sequence>/<frame>.<ext> (DAVIS Annotations/480p, FBMS inst/test, ...);
- a flat folder GT/<frame>.<ext> (the ViSal GroundTruth folder): a prediction's sequence gets
  the ground-truth files named like its frames;
- a dataset root read by the dataset's indexer (`--dataset davis|fbms|visal|...`, `--split`),
  exactly as `--task infer` reads it (e.g. DAVIS-2016 ground truth when the tree has it).
Any non-zero ground-truth pixel is foreground. A prediction is found by the ground-truth frame's
name, else by its frame number as five digits (the original's output names); every scored
ground-truth frame of a scored sequence needs one.

Which sequences are scored (select_sequences): with --dataset, every sequence of its split (each
must have a prediction folder); otherwise those listed by `--split FILE` (one name per line, or
the DAVIS-2016 "<frame path> <mask path>" lines; each must have a prediction folder), else every
ground-truth sequence that has a folder in --pred: a mask tree holding more sequences than were
predicted (DAVIS-2016 Annotations/480p holds train and val) is scored on the predicted ones.
The sequences left out are counted in the log, metrics.json (`gt_sequences_left_out`) and the
report.
"""

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from datasets import index_sequences
from datasets.davis import read_sequence_file
from datasets.io import read_mask, read_prediction
from inference_handlers.evaluation.protocols import (PROTOCOLS, add_frame, new_record, protocol_for, score_frame,
                                                     scored_indices, sequence_csv_rows, summarise, without_records)
from utils.config import DataConfig
from utils.errors import UserError
from utils.files import write_csv, write_json

logger = logging.getLogger("evaluate")

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm")


@dataclass
class TruthSequence:
    name: str
    frames: list[tuple[list[str], Path]]  # per annotated frame: names a prediction may have, mask file
    source: str                           # for "ground truth read"


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def candidate_names(stem: str) -> list[str]:
    """The frame's own name, then its trailing frame number as five digits."""
    match = re.search(r"(\d+)$", stem)
    return [stem] + ([f"{int(match.group(1)):05d}"] if match else [])


def truth_from_folder(gt: Path, pred: Path) -> list[TruthSequence]:
    """A mask tree, or a flat folder matched to the prediction folders by frame name."""
    folders = sorted(p for p in gt.iterdir() if p.is_dir() and image_files(p))
    if folders:
        return [TruthSequence(f.name, [(candidate_names(p.stem), p) for p in image_files(f)], str(gt))
                for f in folders]
    by_stem = {p.stem: p for p in image_files(gt)}
    if not by_stem:
        raise UserError(f"--gt: no mask files or sequence folders in {gt}")
    sequences = []
    for folder in sorted(p for p in pred.iterdir() if p.is_dir()):
        frames = [([p.stem], by_stem[p.stem]) for p in image_files(folder) if p.stem in by_stem]
        if frames:
            sequences.append(TruthSequence(folder.name, frames, f"{gt} (flat, matched by frame name)"))
    return sequences


def truth_from_dataset(dataset: str, root: Path, split: str) -> list[TruthSequence]:
    """The annotated frames of a dataset, read by its indexer as `--task infer` reads them."""
    sequences = index_sequences(DataConfig(test=dataset, test_root=str(root), test_split=split), "test")
    return [TruthSequence(s.name, [([s.frame_name(i), s.original_frame_name(i)], s.mask_paths[i])
                                   for i in s.annotated_indices], s.ground_truth or str(root))
            for s in sequences if s.mask_paths]


@dataclass
class Selection:
    truth: list[TruthSequence]  # the sequences to score
    left_out: list[str]         # names of the ground-truth sequences not scored
    reason: str                 # why they are left out


def examples(names: list[str], count: int = 3) -> str:
    return ", ".join(names[:count]) + (", ..." if len(names) > count else "")


def select_sequences(truth: list[TruthSequence], pred: Path, listed: list[str] | None = None,
                     listing: str = "") -> Selection:
    """The ground-truth sequences to score: those `listed` (by `listing`, e.g. '--split val.txt'),
    each of which must have a prediction folder and ground truth; without a list, every one that
    has a prediction folder (at least one must). Raises UserError naming the sequences missing."""
    if listed is not None:
        no_folder = [name for name in listed if not (pred / name).is_dir()]
        if no_folder:
            raise UserError(f"{listing}: {len(no_folder)} listed sequence(s) have no prediction folder in {pred}: "
                            f"{examples(no_folder)}")
        known = {sequence.name for sequence in truth}
        no_truth = [name for name in listed if name not in known]
        if no_truth:
            raise UserError(f"{listing}: {len(no_truth)} listed sequence(s) have no annotated frame in --gt: "
                            f"{examples(no_truth)}")
        return Selection([s for s in truth if s.name in listed], [s.name for s in truth if s.name not in listed],
                         f"not listed in {listing}")
    kept = [sequence for sequence in truth if (pred / sequence.name).is_dir()]
    if not kept:
        raise UserError(f"--pred: none of the {len(truth)} ground-truth sequences has a prediction folder in {pred} "
                        f"(e.g. {pred / truth[0].name})")
    return Selection(kept, [s.name for s in truth if not (pred / s.name).is_dir()], f"no folder in {pred}")


def sequence_list(split: str) -> list[str]:
    """The sequence names of a `--split FILE` (datasets.davis.read_sequence_file)."""
    path = Path(split)
    if not path.is_file():
        raise UserError(f"--split: file not found: {split} (without --dataset, --split is a file listing the "
                        f"sequences to score, one name per line)")
    try:
        return read_sequence_file(path)
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"--split: cannot read {split}: {error}") from error


def find_prediction(folder: Path, names: list[str]) -> Path | None:
    for name in names:
        for suffix in IMAGE_SUFFIXES:
            if (folder / f"{name}{suffix}").is_file():
                return folder / f"{name}{suffix}"
    return None


def evaluate(pred: Path, truth: list[TruthSequence], protocol: str, frames: str,
             show_progress: bool = True) -> dict:
    """The summary (protocols.summarise) of the predictions under `pred`."""
    records, missing = {}, []
    for sequence in tqdm(truth, desc="evaluate", unit="sequence", disable=not show_progress):
        record = new_record(protocol)
        scored = set(scored_indices(list(range(len(sequence.frames))), frames))
        for position, (names, mask_path) in enumerate(sequence.frames):
            if position not in scored:
                continue
            found = find_prediction(pred / sequence.name, names)
            if found is None:
                missing.append(f"{sequence.name}/{names[0]}")
                continue
            labels, grey = read_prediction(found)
            add_frame(record, protocol, found.stem,
                      score_frame(protocol, labels, grey, read_mask(mask_path) != 0))
        records[sequence.name] = record
    if missing:
        raise UserError(f"--pred: no prediction for {len(missing)} annotated frames in {pred}, "
                        f"e.g. {', '.join(missing[:3])}")
    return summarise(records, protocol, frames, [s.source for s in truth])


def report_frames(pred: Path, truth: list[TruthSequence], summary: dict) -> dict:
    """per_frame.json's "sequences" (report.py): the ground-truth frames that have a prediction,
    their files (no frame images: the evaluator reads none) and the scores kept in the records."""
    measures = PROTOCOLS[summary["protocol"]].frame_measures
    table = {}
    for sequence in truth:
        found = [(find_prediction(pred / sequence.name, names), mask) for names, mask in sequence.frames]
        found = [(path, mask) for path, mask in found if path is not None]
        record = summary["records"][sequence.name]
        table[sequence.name] = {"frames": [path.stem for path, _ in found], "video": None, "image": [None] * len(found),
                                "truth": [os.path.abspath(mask) for _, mask in found],
                                "prediction": [os.path.abspath(path) for path, _ in found],
                                "scored": record["frames"], **{key: record[key] for key in measures}}
    return table


@dataclass
class FolderScores:
    """The scores of a folder of predictions (score_folder): the ground truth found, the sequences
    scored and left out (selection) and the summary of the protocol."""
    pred: Path
    truth: list[TruthSequence]
    selection: Selection
    summary: dict


def score_folder(pred: Path, gt: Path, protocol: str | None = None, frames: str = "all",
                 dataset: str | None = None, split: str | None = None) -> FolderScores:
    """Score the prediction folders in `pred` against the ground truth `gt`: a mask tree or flat
    folder, or with `dataset` that dataset's root, of which `split` is scored (default
    2016/val.txt); without `dataset`, `split` is a file of the sequences to score. `protocol`
    defaults to the dataset's (else davis2016); `frames` is a FRAME_SETS name."""
    for flag, folder in (("--pred", pred), ("--gt", gt)):
        if not folder.is_dir():
            raise UserError(f"{flag}: folder not found: {folder}")
    protocol = protocol or protocol_for("auto", dataset or "davis")
    if dataset:
        split = split or "2016/val.txt"
        truth = truth_from_dataset(dataset, gt, split)
        listed, listing = [sequence.name for sequence in truth], f"--split {split} of --dataset"
    else:
        truth = truth_from_folder(gt, pred)
        listed, listing = (sequence_list(split) if split else None), f"--split {split}"
    if not truth:
        raise UserError(f"--gt: no annotated frames found in {gt}")
    selection = select_sequences(truth, pred, listed, listing)
    left_out = selection.left_out
    if left_out:
        logger.info("%d of %d ground-truth sequences left out (%s): %s", len(left_out), len(truth),
                    selection.reason, examples(left_out))
    summary = evaluate(pred, selection.truth, protocol, frames)
    summary["gt_sequences_left_out"] = len(left_out)
    return FolderScores(pred, truth, selection, summary)


def write_folder_results(scores: FolderScores, out: str | Path | None, with_report: bool) -> None:
    """metrics.json and metrics.csv into `out` (when given); with `with_report` also report.html
    and per_frame.json (with the metrics) into `out`."""
    summary, selection = scores.summary, scores.selection
    if out:
        write_json(Path(out) / "metrics.json", without_records(summary))
        write_csv(Path(out) / "metrics.csv", sequence_csv_rows(summary))
    if with_report:
        from inference_handlers.evaluation.report import write_report
        from utils.versions import environment_versions
        header = {"source": "python -m inference_handlers.evaluate", "predictions": str(scores.pred.resolve()),
                  "versions": environment_versions()}
        if selection.left_out:
            header["gt_left_out"] = (f"{len(selection.left_out)} of {len(scores.truth)} sequences "
                                     f"({selection.reason}): {', '.join(selection.left_out)}")
        frames = report_frames(scores.pred, selection.truth, summary)
        logger.info("report written to %s", write_report(Path(out), header, frames, summary))
