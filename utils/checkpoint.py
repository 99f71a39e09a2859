"""Our checkpoint format: a dict written atomically with `torch.save`.

    {"format": CHECKPOINT_FORMAT, "model": state_dict, "optimizer": ..., "scheduler": ...,
     "scaler": ..., "epoch": int, "iteration": int, "config": resolved config as a plain dict,
     "training": {...}}

`epoch` is the 0-based epoch of the last optimiser step and `iteration` the number of steps done.
`training` (training checkpoints only) holds what an exact resume needs besides the optimiser:
the data order position, every RNG state and the best validation score so far (tasks/resume.py).

Every file a user passes in is read here, safely and once (`read_weight_file`): PyTorch files with
`torch.load(..., weights_only=True)`, memory-mapped when they are zip archives (torch >= 1.6; a
tensor's bytes are read when first used), and caffe2 weight pickles with an unpickler that builds
numpy arrays and nothing else.
"""

import codecs
import logging
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from utils.files import atomic_write
from utils.errors import UserError

try:  # numpy >= 2 (numpy 1.26 also has these names)
    from numpy._core import multiarray as _multiarray, numeric as _numeric
except ImportError:  # older numpy 1.x
    from numpy.core import multiarray as _multiarray, numeric as _numeric

CHECKPOINT_FORMAT = "3dcseg-rebuild/1"
FIRST_CHECKPOINTS = ("last.pth", "best.pth")  # what training writes and --wts usually names, in that order
ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default container since PyTorch 1.6; older files are plain pickles
# The only globals a caffe2 weight pickle may reference: numpy's array reconstruction
# (numpy 1.x and 2.x module names), OrderedDict, and `_codecs.encode`, which protocol <= 2
# pickles written by Python 3 use for bytes.
ALLOWED_PICKLE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy.core.multiarray", "scalar"): _multiarray.scalar,
    ("numpy._core.multiarray", "scalar"): _multiarray.scalar,
    ("numpy.core.numeric", "_frombuffer"): _numeric._frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _numeric._frombuffer,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("collections", "OrderedDict"): OrderedDict,
    ("_codecs", "encode"): codecs.encode,
}
logger = logging.getLogger(__name__)


def save_checkpoint(path, *, model_state: dict, epoch: int, iteration: int, config: dict,
                    optimizer_state: dict | None = None, scaler_state: dict | None = None,
                    scheduler_state: dict | None = None, training_state: dict | None = None) -> None:
    """Write a checkpoint in our format (temp file + rename)."""
    payload = {"format": CHECKPOINT_FORMAT, "model": model_state, "optimizer": optimizer_state,
               "scheduler": scheduler_state, "scaler": scaler_state, "epoch": epoch,
               "iteration": iteration, "config": config, "training": training_state}

    def write(tmp_path):
        with open(tmp_path, "wb") as file:  # through a file object a full disk raises OSError, not RuntimeError
            torch.save(payload, file)

    atomic_write(path, write)
    logger.info("saved checkpoint %s (epoch %d, iteration %d)", path, epoch, iteration)


def checkpoints_in(folder) -> list[Path]:
    """The checkpoints (*.pth) in `folder`: last.pth and best.pth first, then the others by name;
    none when it is not a folder."""
    found = sorted(path for path in Path(folder).glob("*.pth") if path.is_file())
    first = [path for name in FIRST_CHECKPOINTS for path in found if path.name == name]
    return first + [path for path in found if path not in first]


def checkpoint_names(paths: list[Path], shown: int = 3) -> str:
    """'last.pth, best.pth, epoch_004.pth and 5 more': the first `shown` file names of `paths`."""
    names = ", ".join(path.name for path in paths[:shown])
    return names + (f" and {len(paths) - shown} more" if len(paths) > shown else "")


def check_weights_file(path, flag: str, hint: str = "") -> None:
    """A UserError unless `path` (given as `flag`) is a file: for a folder, naming the checkpoint
    in it that was probably meant; `hint` ("; ...") ends the message of a missing file and of a
    folder without checkpoints."""
    path = Path(path)
    if path.is_file():
        return
    if not path.is_dir():
        raise UserError(f"{flag}: file not found: {path}{hint}")
    found = checkpoints_in(path)
    if not found:
        raise UserError(f"{flag} {path} is a folder, not a checkpoint file, and holds no checkpoint (*.pth){hint}")
    also = f" (it also holds {checkpoint_names(found[1:])})" if len(found) > 1 else ""
    raise UserError(f"{flag} {path} is a folder; did you mean {found[0]}?{also}")


def read_weight_file(path) -> object:
    """Read a PyTorch file (zip or legacy `torch.save`, loaded with weights_only=True) or a
    caffe2 pickle (restricted to numpy arrays); every failure is one UserError line."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"weights file not found: {path}")
    with path.open("rb") as handle:
        if handle.read(len(ZIP_MAGIC)) == ZIP_MAGIC:
            return read_torch_file(path)
        handle.seek(0)
        obj = _load_numpy_pickle(handle, path)
    if not isinstance(obj, dict):  # legacy torch.save files start with a pickled magic number
        return read_torch_file(path)
    return obj


class ForbiddenGlobal(pickle.UnpicklingError):
    """A pickle referenced something other than numpy array building blocks."""


class NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        allowed = ALLOWED_PICKLE_GLOBALS.get((module, name))
        if allowed is None:
            raise ForbiddenGlobal(f"{module}.{name}")
        return allowed


def _load_numpy_pickle(handle, path: Path) -> object:
    try:
        return NumpyOnlyUnpickler(handle, encoding="latin1").load()
    except ForbiddenGlobal as error:
        raise UserError(f"refusing to load {path}: the pickle references {error}, but weight "
                        "pickles may only contain numpy arrays") from None
    except Exception as error:  # any parse failure of untrusted bytes means "not a weight file"
        reason = f"{type(error).__name__}: {error}".splitlines()[0]
        raise UserError(f"cannot read {path}: not a PyTorch checkpoint or caffe2 weight pickle "
                        f"(truncated?): {reason}") from None


def read_torch_file(path) -> object:
    """`torch.load` a user-supplied file safely (memory-mapped when it is a zip archive), turning
    every failure into one clear line."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"weights file not found: {path}")
    try:
        with path.open("rb") as handle:
            mmap = handle.read(len(ZIP_MAGIC)) == ZIP_MAGIC
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile,
            ValueError, OSError) as error:
        text = str(error).strip()
        first_line = text.splitlines()[0].split(". ")[0] if text else type(error).__name__
        raise UserError(f"cannot read {path} as a PyTorch checkpoint "
                        f"(truncated, or not a checkpoint?): {first_line}") from error


def read_training_checkpoint(path) -> dict:
    """The checkpoint a run resumes from, written by training in our format, with its optimiser and
    training state; every failure names the file and how to start over instead."""
    start_over = "move it away or set train.resume=false to start over"
    try:
        checkpoint = read_torch_file(path)
    except UserError as error:
        raise UserError(f"{error}; {start_over}") from error
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{path} is not a training checkpoint in our format ({CHECKPOINT_FORMAT}); {start_over}")
    if not isinstance(checkpoint.get("training"), dict) or checkpoint.get("optimizer") is None:
        raise UserError(f"{path} holds no training state (written by an export or conversion?); {start_over}")
    return checkpoint
