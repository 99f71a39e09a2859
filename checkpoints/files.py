"""Reading the files a user passes in, safely and once.

`read_weight_file` reads PyTorch files with `torch.load(..., weights_only=True)`, memory-mapped
when they are zip archives (torch >= 1.6; a tensor's bytes are read when first used), and caffe2
weight pickles with an unpickler that builds numpy arrays and nothing else. Every failure is one
UserError line. What the files hold is read elsewhere: our checkpoint format in
checkpoints/training.py, model weights in every format in checkpoints/weights.py.
"""

import codecs
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from utils.errors import UserError

try:  # numpy >= 2 (numpy 1.26 also has these names)
    from numpy._core import multiarray as _multiarray, numeric as _numeric
except ImportError:  # older numpy 1.x
    from numpy.core import multiarray as _multiarray, numeric as _numeric

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
