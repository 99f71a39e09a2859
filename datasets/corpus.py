"""Many videos in one `--input` run (a corpus): which inputs are one, their sequence names, and
each video's length estimated cheaply for spreading them over processes.

    --input FILE.mp4              one video (datasets.video), as before
    --input FOLDER                holding frame images (.jpg .jpeg .png .bmp) directly: one sequence
                                  of its frames, as before (anything else in it is not read);
                                  holding none: a corpus of every video file (.mp4 .avi .mov .mkv
                                  .webm .m4v) in it or in a folder below it, and of every folder
                                  below it that holds frame images (one sequence each, not searched
                                  further); names starting with '.' and symbolic links to folders
                                  are not searched
    --input 'clips/*.mp4'         a glob (quoted, so that the shell passes it on; '**' spans
                                  folders): the videos and frame folders it matches
    --input @list.txt             a text file naming one video or frame folder per line, relative to
                                  the list file's folder or absolute; blank lines and lines starting
                                  with '#' are skipped; a path listed twice counts once

Sequence names: the entry's path relative to the common root (the deepest folder holding them
all), its folders joined by '__' and a video's suffix dropped: clips/a/b.mp4 and clips/c.mp4 are
the sequences a__b and c. Two entries with one name (a/b.mp4 and a__b.mp4, or b.mp4 and b.mkv)
are refused with one error line. A name that is not a plain one, or that is the name of a file of
the run folder (RESERVED_NAMES), makes that entry fail, like an unreadable video.

The run folder, results/<name>/<input name>/ (`input_name`): the folder's name, the list file's
stem, or for a glob the name of its last folder before the first wildcard ('clips/*.mp4' and
'clips/**/*.mkv' -> clips; '*.mp4' -> the current folder's name).
"""

import glob
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import av

from datasets import video
from datasets.io import DataFileError, check_plain_name
from datasets.sequence import Sequence
from datasets.video import IMAGE_SUFFIXES, VIDEO_SUFFIXES, index_frame_folder, index_video
from utils.config_live import is_live_input
from utils.errors import UserError

LIST_PREFIX = "@"
NAME_SEPARATOR = "__"  # joins the folders of an entry's relative path into its sequence name
# Names of the run folder's own files and folders: no sequence (a folder) may take them.
RESERVED_NAMES = frozenset({"probs", "overlays", "config.yaml", "infer.log", "report.html", "per_frame.json",
                            "metrics.json", "metrics.csv", "failures.json", ".lock"})


@dataclass(frozen=True)
class CorpusEntry:
    path: Path       # a video file or a folder of frames, absolute
    name: str        # its sequence name
    frames: int = 0  # estimated frame count (estimate_frames), to balance processes


@dataclass
class Corpus:
    name: str                         # the run folder's name (input_name)
    entries: list[CorpusEntry]        # in listing order
    failures: list[dict] = field(default_factory=list)  # {"path", "sequence", "reason"}: refused before indexing
    ignored: int = 0                  # files matched or found that are neither videos nor frame folders


def is_list(spec) -> bool:
    return str(spec).startswith(LIST_PREFIX)


def is_glob(spec) -> bool:
    """A pattern with wildcards that does not name an existing path as it is written."""
    return glob.has_magic(str(spec)) and not Path(spec).exists()


def holds_frames(folder: Path) -> bool:
    """Whether `folder` holds a frame image (by suffix) directly."""
    try:
        return any(path.suffix.lower() in IMAGE_SUFFIXES and path.is_file() for path in folder.iterdir())
    except OSError:
        return False


def is_corpus_input(spec) -> bool:
    """Whether `--input spec` names many videos (a list file, a glob, a folder without frame
    images in it) rather than one video or one folder of frames (or a live source)."""
    if is_live_input(spec):
        return False
    if is_list(spec) or is_glob(spec):
        return True
    path = Path(spec)
    return path.is_dir() and not holds_frames(path)


def glob_root(pattern: str) -> Path:
    """The folder of `pattern` before its first wildcard ('.' when it starts with one)."""
    parts = Path(pattern).parts
    fixed = parts[:next(i for i, part in enumerate(parts) if glob.has_magic(part))]
    return Path(*fixed) if fixed else Path(".")


def input_name(spec) -> str:
    """The name of `--input spec`'s run folder (results/<name>/<input name>/): see the module's
    docstring; refused (UserError) unless it is a plain name, or when the list file does not
    exist or the glob matches nothing (before the run folder is made)."""
    spec = str(spec)
    if is_live_input(spec):
        return video.input_name(spec)
    if is_list(spec):
        list_file = Path(spec[len(LIST_PREFIX):])
        if not list_file.is_file():
            raise UserError(f"--input {spec}: no such list file: {list_file}")
        name = list_file.stem
    elif is_glob(spec):
        if not glob.glob(spec, recursive=True):
            raise UserError(f"--input {spec}: the pattern matches no file or folder")
        name = glob_root(spec).resolve().name
    else:
        return video.input_name(spec)
    return check_plain_name(name, Path(spec), "the name of --input")


def sort_key(path: Path) -> list:
    """Natural order (2 before 10) of the path's components, folder by folder."""
    return [[int(piece) if piece.isdigit() else piece for piece in re.split(r"(\d+)", part)] for part in path.parts]


def folder_entries(folder: Path) -> tuple[list[Path], int]:
    """The videos and frame folders in or below `folder`, and the count of other files there."""
    entries, ignored = [], 0
    for child in sorted(folder.iterdir(), key=sort_key):
        if child.name.startswith("."):
            continue
        if child.is_dir():
            if holds_frames(child):
                entries.append(child)
            elif not child.is_symlink():
                found, skipped = folder_entries(child)
                entries += found
                ignored += skipped
        elif child.suffix.lower() in VIDEO_SUFFIXES:
            entries.append(child)
        else:
            ignored += 1
    return entries, ignored


def glob_entries(pattern: str) -> tuple[list[Path], int]:
    """The videos and frame folders `pattern` matches, and the count of its other matches."""
    entries, ignored = [], 0
    for path in sorted((Path(match) for match in glob.glob(pattern, recursive=True)), key=sort_key):
        if (path.is_dir() and holds_frames(path)) or (path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES):
            entries.append(path)
        else:
            ignored += 1
    return entries, ignored


def list_entries(list_file: Path) -> list[Path]:
    """The paths a list file names (checked later, one by one)."""
    try:
        lines = list_file.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"--input {LIST_PREFIX}{list_file}: cannot read the list file: {error}") from error
    paths = {}
    for line in (line.strip() for line in lines):
        if line and not line.startswith("#"):
            path = Path(os.path.abspath(list_file.parent / line))
            paths.setdefault(path, None)
    return list(paths)


def sequence_names(paths: list[Path]) -> list[str]:
    """Each path relative to the deepest folder holding them all, folders joined by '__', a
    video file's suffix dropped."""
    root = Path(os.path.commonpath([path.parent for path in paths]))
    names = []
    for path in paths:
        parts = list(path.relative_to(root).parts)
        if path.suffix.lower() in VIDEO_SUFFIXES and not path.is_dir():
            parts[-1] = path.stem
        names.append(NAME_SEPARATOR.join(parts))
    return names


def entry_problem(path: Path, name: str) -> str | None:
    """Why an entry cannot be a sequence before it is read (None when it can)."""
    if not name or name in (".", "..") or any(character in name for character in "/\\\0"):
        return f"its sequence name {name!r} is not a plain name"
    if name in RESERVED_NAMES:
        return f"its sequence name {name!r} is that of a file of the run folder; rename it"
    if not path.exists():
        return "no such file or folder"
    if path.is_dir() and not holds_frames(path):
        return f"a folder without {'/'.join(IMAGE_SUFFIXES)} frames"
    if path.is_file() and path.suffix.lower() not in VIDEO_SUFFIXES:
        return f"neither a video ({', '.join(VIDEO_SUFFIXES)}) nor a folder of frames"
    return None


def list_corpus(spec) -> Corpus:
    """The corpus `--input spec` names (is_corpus_input): its entries, named; UserError when it
    names no video at all or two entries share a name."""
    spec = str(spec)
    ignored = 0
    run_name = input_name(spec)
    if is_list(spec):
        paths = list_entries(Path(spec[len(LIST_PREFIX):]))
    elif is_glob(spec):
        paths, ignored = glob_entries(spec)
    else:
        paths, ignored = folder_entries(Path(spec))
    if not paths:
        raise UserError(f"--input {spec}: no video ({', '.join(VIDEO_SUFFIXES)}) and no folder of "
                        f"{'/'.join(IMAGE_SUFFIXES)} frames found")
    paths = [Path(os.path.abspath(path)) for path in paths]
    names = sequence_names(paths)
    owner = {}
    for path, name in zip(paths, names):
        if name in owner:
            raise UserError(f"--input {spec}: {owner[name]} and {path} would both be the sequence '{name}'; "
                            f"rename one of them")
        owner[name] = path
    corpus = Corpus(name=run_name, entries=[], ignored=ignored)
    for path, name in zip(paths, names):
        problem = entry_problem(path, name)
        if problem is None:
            corpus.entries.append(CorpusEntry(path, name))
        else:
            corpus.failures.append({"path": str(path), "sequence": name, "reason": problem})
    return corpus


def metadata_frames(path: Path) -> int:
    """A video's frame count from its container's header (0 when it has none or does not open):
    the stream's frame count, else its duration times its frame rate. Decodes nothing."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            if stream.frames > 0:
                return stream.frames
            rate = stream.average_rate or stream.guessed_rate
            seconds = (stream.duration * stream.time_base if stream.duration
                       else container.duration / av.time_base if container.duration else 0)
            return max(0, round(seconds * rate)) if rate else 0
    except (av.FFmpegError, OSError, IndexError):
        return 0


def estimate_frames(entries: list[CorpusEntry]) -> list[CorpusEntry]:
    """The entries with `frames` estimated: a frame folder's image count; a video's count from its
    header (metadata_frames); a video without one by its file size at the bytes per frame of the
    videos with one (all by file size when none has)."""
    counts = [sum(1 for p in e.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if e.path.is_dir()
              else metadata_frames(e.path) for e in entries]
    sizes = [0 if e.path.is_dir() else e.path.stat().st_size for e in entries]
    known = [(count, size) for count, size in zip(counts, sizes) if count and size]
    frames_per_byte = sum(c for c, _ in known) / sum(s for _, s in known) if known else 1.0
    return [CorpusEntry(e.path, e.name, count or max(1, round(size * frames_per_byte)))
            for e, count, size in zip(entries, counts, sizes)]


def index_entry(entry: CorpusEntry) -> Sequence:
    """The entry as a sequence; DataFileError with the reason when it cannot be read (missing,
    empty, not decodable, no frame)."""
    path = entry.path
    try:
        if path.is_dir():
            return index_frame_folder(path, name=entry.name)
        if not path.is_file():
            raise DataFileError("no such file")
        if path.stat().st_size == 0:
            raise DataFileError("empty file (0 bytes)")
        return index_video(path, name=entry.name)
    except DataFileError:
        raise
    except UserError as error:
        raise DataFileError(str(error).removeprefix("--input: ")) from error
