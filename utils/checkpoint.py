"""Our checkpoint format: a dict written atomically with `torch.save`.

    {"format": CHECKPOINT_FORMAT, "model": state_dict, "optimizer": ..., "scheduler": ...,
     "scaler": ..., "epoch": int, "iteration": int, "config": resolved config as a plain dict,
     "training": {...}}

`epoch` is the 0-based epoch of the last optimiser step and `iteration` the number of steps done.
`training` (training checkpoints only) holds what an exact resume needs besides the optimiser:
the data order position, every RNG state and the best validation score so far (tasks/resume.py).
Files a user passes in are read with `torch.load(..., weights_only=True)`.
"""

import logging
import pickle
import zipfile
from pathlib import Path

import torch

from utils.files import atomic_write
from utils.errors import UserError

CHECKPOINT_FORMAT = "3dcseg-rebuild/1"
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


def read_torch_file(path) -> object:
    """`torch.load` a user-supplied file safely, turning every failure into one clear line."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"weights file not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
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
