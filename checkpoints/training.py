"""The training checkpoint (our checkpoint format): its layout, and the save / restore pair.

    {"format": CHECKPOINT_FORMAT,
     "model": state dict, "optimizer": state dict, "scheduler": state dict, "scaler": state dict,
     "epoch": int,      # the 0-based epoch of the last optimiser step
     "iteration": int,  # optimiser steps done
     "config": the resolved config as a plain dict (utils.config.to_dict),
     "training": {"progress": a `Progress` as a dict (the epoch, the batches of it done, the best
                              validation score, ...),
                  "rng": [every RNG state of process 0, of process 1, ...]}}

Every read and write of these keys is in this module. `TrainingCheckpointer` holds the objects a
run trains: `save` writes all of them, `restore` loads all of them, and the run then continues at
the step after the checkpoint and ends with the weights of a run that never stopped (the data
order of an epoch depends only on (seed, epoch); tasks/resume.py skips the batches done).
Checkpoints written by `python -m checkpoints.convert` hold the model alone ("optimizer",
"scheduler", "scaler", "training" and "config" None); `--wts` reads any of ours through
`model_entries`. Under torchrun, tasks/train.py gathers every process's RNG states for rank 0 to
save, and tasks/resume.py hands every process the most advanced checkpoint any of them sees.
`check_weights_file` turns a `--wts` that names a run folder into a hint at its checkpoints.
"""

import logging
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from checkpoints.files import read_torch_file
from checkpoints.state_dicts import compare_state, strip_prefixes
from utils.config import to_dict
from utils.errors import UserError
from utils.files import atomic_write

CHECKPOINT_FORMAT = "3dcseg-rebuild/1"
LAST_CHECKPOINT = "last.pth"  # in saved_models/<name>/: what a run resumes from
# what training writes and --wts usually names, in that order (besides the epoch_NNN.pth snapshots)
FIRST_CHECKPOINTS = (LAST_CHECKPOINT, "best.pth")
START_OVER = "move it away or set train.resume=false to start over"
logger = logging.getLogger(__name__)


@dataclass
class Progress:
    """Where training stands; stored in the checkpoint's `training` entry."""
    epoch: int = 0                   # the epoch in progress (0-based)
    epoch_batches: int = 0           # batches of that epoch already trained
    epoch_finished: bool = False     # its validation and end-of-epoch checkpoint are done
    iteration: int = 0               # optimiser steps in the whole run
    best_score: float | None = None  # best validation score so far (best.pth)
    best_epoch: int | None = None    # the epoch (1-based) that reached it
    finished: bool = False           # the run trained all its epochs
    skipped_steps: int = 0           # fp16: optimiser steps skipped in a row for overflowing gradients


class ModelEntries(NamedTuple):
    """The model part of one of our checkpoints, as stored."""
    state: dict
    epoch: object
    iteration: object
    config: dict | None
    training: dict | None  # written by training: what a resume needs


def save_checkpoint(path, *, model_state: dict, epoch: int, iteration: int, config: dict | None,
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


def read_training_checkpoint(path) -> dict:
    """The checkpoint a run resumes from, written by training in our format, with its optimiser and
    training state; every failure names the file and how to start over instead."""
    try:
        checkpoint = read_torch_file(path)
    except UserError as error:
        raise UserError(f"{error}; {START_OVER}") from error
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{path} is not a training checkpoint in our format ({CHECKPOINT_FORMAT}); {START_OVER}")
    if not isinstance(checkpoint.get("training"), dict) or checkpoint.get("optimizer") is None:
        raise UserError(f"{path} holds no training state (written by an export or conversion?); {START_OVER}")
    return checkpoint


def resume_position(checkpoint: dict) -> tuple[int, bool]:
    """(iteration, epoch finished) of a training checkpoint: the larger, the further it is."""
    progress = checkpoint["training"]["progress"]
    return progress["iteration"], progress["epoch_finished"]


def is_our_checkpoint(obj) -> bool:
    """A loaded file claims our format (its version is checked by `model_entries`)."""
    return isinstance(obj, dict) and "format" in obj


def model_entries(checkpoint: dict, path) -> ModelEntries:
    """The model, counters, config and training state of one of our checkpoints."""
    if checkpoint["format"] != CHECKPOINT_FORMAT or not isinstance(checkpoint.get("model"), dict):
        raise UserError(f"{path}: checkpoint format {checkpoint['format']!r} is not supported "
                        f"(expected {CHECKPOINT_FORMAT!r} with a 'model' state dict)")
    config, training = checkpoint.get("config"), checkpoint.get("training")
    return ModelEntries(checkpoint["model"], checkpoint.get("epoch"), checkpoint.get("iteration"),
                        config if isinstance(config, dict) else None,
                        training if isinstance(training, dict) else None)


def unfinished_epoch(training: dict | None) -> int | None:
    """The epoch (1-based) in which the run that wrote a checkpoint stopped, if it has epochs
    left (`training`: the checkpoint's training state); None otherwise."""
    progress = training.get("progress", {}) if isinstance(training, dict) else {}
    return progress.get("epoch", 0) + 1 if progress.get("finished") is False else None


def rng_states() -> dict:
    """Every RNG state of this process, as plain lists and tensors (loadable with weights_only)."""
    version, python_state, gauss = random.getstate()
    numpy_state = np.random.get_state(legacy=False)
    return {"python": [version, list(python_state), gauss],
            "numpy": {"key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
                      "pos": numpy_state["state"]["pos"], "has_gauss": numpy_state["has_gauss"],
                      "gauss": numpy_state["gauss"]},
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def restore_rng_states(states: dict) -> None:
    version, python_state, gauss = states["python"]
    random.setstate((version, tuple(python_state), gauss))
    numpy_state = states["numpy"]
    np.random.set_state({"bit_generator": "MT19937",
                         "state": {"key": numpy_state["key"].numpy().astype(np.uint32), "pos": numpy_state["pos"]},
                         "has_gauss": numpy_state["has_gauss"], "gauss": numpy_state["gauss"]})
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def rank_rng_states(per_rank: list[dict], rank: int, world_size: int) -> dict:
    """Process `rank`'s entry of the RNG states stored per process (process 0's if the number
    of processes changed)."""
    if len(per_rank) != world_size:
        logger.warning("the checkpoint was written by %d processes, this run has %d: every process "
                       "restores the RNG state of process 0", len(per_rank), world_size)
        return per_rank[0]
    return per_rank[rank]


def progress_from_state(state: dict, path) -> Progress:
    try:
        return Progress(**state)
    except TypeError as error:
        raise UserError(f"{path}: unreadable training state ({error}); {START_OVER}") from error


def load_model_state(network: torch.nn.Module, state: dict, source: str) -> None:
    """A training checkpoint's model into the run's network: the same names and shapes, else one
    UserError that lists the differences (the run's config builds another model)."""
    state = strip_prefixes(state)
    difference = compare_state(network.state_dict(), state)
    if difference.problems():
        raise difference.error(source)
    network.load_state_dict(state)


@dataclass
class TrainingCheckpointer:
    """The save / restore pair of the training checkpoint, over the objects a run trains."""
    model_dir: Path      # saved_models/<name>
    network: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    cfg: object          # the run's config (utils.config.Config)

    def save(self, progress: Progress, rng_per_rank: list[dict], copies=()) -> None:
        """Write the checkpoint as the `copies` (best.pth, epoch_NNN.pth), then as last.pth: a run
        killed before last.pth is written resumes from the previous one and writes the copies
        again, so none is lost. `rng_per_rank`: `rng_states()` of every process."""
        first, *others = [*copies, LAST_CHECKPOINT]
        save_checkpoint(self.model_dir / first, model_state=self.network.state_dict(), epoch=progress.epoch,
                        iteration=progress.iteration, config=to_dict(self.cfg),
                        optimizer_state=self.optimizer.state_dict(), scheduler_state=self.scheduler.state_dict(),
                        scaler_state=self.scaler.state_dict(),
                        training_state={"progress": asdict(progress), "rng": rng_per_rank})
        for name in others:
            atomic_write(self.model_dir / name, lambda tmp: shutil.copyfile(self.model_dir / first, tmp))
            logger.info("saved %s", self.model_dir / name)

    def restore(self, checkpoint: dict, source, rank: int = 0, world_size: int = 1) -> Progress:
        """Load a checkpoint from `read_training_checkpoint` into the network, optimiser, schedule
        and scaler, and restore process `rank`'s RNG states; returns where training stands."""
        load_model_state(self.network, checkpoint["model"], str(source))
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        if self.scaler.is_enabled() and checkpoint["scaler"]:
            self.scaler.load_state_dict(checkpoint["scaler"])
        restore_rng_states(rank_rng_states(checkpoint["training"]["rng"], rank, world_size))
        return progress_from_state(checkpoint["training"]["progress"], source)
