"""Stop and resume: the training state beyond model and optimiser, the resumable data order,
and SIGTERM / SIGINT handling.

A run that stops (signal, crash, node failure) and is started again with the same command
continues from saved_models/<name>/last.pth at the step after the checkpoint and ends with the
same weights as a run that never stopped: the data order of an epoch depends only on (seed,
epoch) and the position inside it is stored, as are every RNG state, the optimiser, the
learning-rate schedule and the GradScaler.
"""

import itertools
import logging
import random
import signal
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DistributedSampler

from tasks.distributed import broadcast_object, gather_objects, rank, world_size
from utils.checkpoint import read_training_checkpoint
from utils.errors import UserError

logger = logging.getLogger(__name__)
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


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


class ResumableSampler(DistributedSampler):
    """This rank's share of a permutation of the dataset drawn from (seed, epoch), like
    DistributedSampler (one process: all of it); `start_at(n)` skips the first n samples of
    the current epoch's order, which is how a resumed epoch continues where it stopped."""

    def __init__(self, dataset, seed: int):
        super().__init__(dataset, num_replicas=world_size(), rank=rank(), shuffle=True, seed=seed,
                         drop_last=True)
        self.skip = 0

    def start_at(self, samples: int) -> None:
        self.skip = samples

    def __iter__(self):
        return itertools.islice(super().__iter__(), self.skip, None)

    def __len__(self) -> int:
        return super().__len__() - self.skip


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


def rank_rng_states(per_rank: list[dict]) -> dict:
    """This rank's entry of the RNG states stored per rank (rank 0's if the world size changed)."""
    if len(per_rank) != world_size():
        logger.warning("the checkpoint was written by %d processes, this run has %d: every process "
                       "restores the RNG state of process 0", len(per_rank), world_size())
        return per_rank[0]
    return per_rank[rank()]


def resume_path(cfg, model_dir: Path, weights_path: str | None) -> Path | None:
    """saved_models/<name>/last.pth when this run resumes from it, else None (a fresh start).

    A run resumes when train.resume is true and its last.pth exists. Then `--wts` and
    `train.init_weights` are not used (they only start fresh runs), which is logged, so that
    the same command, run again, always continues. `--wts` naming the run's own last.pth thus
    resumes too. Every rank resumes when any rank sees a last.pth (`read_resume_checkpoint`).
    """
    last = model_dir / "last.pth"
    resume = cfg.train.resume and any(gather_objects(last.is_file()))  # some node may have none (folder per node)
    if not resume:
        if last.is_file():
            logger.warning("train.resume=false: starting over; %s will be overwritten", last)
        return None
    for key, value in (("--wts", weights_path), ("train.init_weights", cfg.train.init_weights)):
        if value and Path(value).resolve() != last.resolve():
            logger.warning("%s %s is not used: this run resumes from %s (train.resume=false "
                           "starts over from %s instead)", key, value, last, key)
    return last


def read_resume_checkpoint(path: Path) -> dict:
    """The checkpoint every rank resumes from: the most advanced `path` (last.pth) that any rank
    sees. With one shared run folder every rank reads the same file; with a folder per machine
    only the machine that held rank 0 has written one (and rank 0 may be elsewhere after a
    restart), so it is sent to the ranks that see an older one or none."""
    checkpoint = read_training_checkpoint(path) if path.is_file() else None
    progress = None if checkpoint is None else checkpoint["training"]["progress"]
    positions = gather_objects(None if progress is None else (progress["iteration"], progress["epoch_finished"]))
    newest = max(range(len(positions)), key=lambda index: (positions[index] is not None, positions[index] or ()))
    if all(position == positions[newest] for position in positions):
        return checkpoint
    logger.info("resuming every process from the %s of process %d (iteration %d); the processes saw %s",
                path, newest, positions[newest][0], positions)
    return broadcast_object(checkpoint if rank() == newest else None, source=newest)


class StopSignals:
    """Within `with StopSignals() as stop:`, SIGTERM and SIGINT set `stop.received` (the signal
    name) instead of killing the process; the loop checks it after every step, writes last.pth
    and returns. A second SIGINT (Ctrl-C twice) interrupts at once."""

    def __init__(self):
        self.received: str | None = None
        self.previous = {}

    def _handle(self, signum, frame) -> None:
        if self.received and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = signal.Signals(signum).name
        logger.warning("%s received: stopping after this step and writing last.pth "
                       "(Ctrl-C again to stop at once)", self.received)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self.previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


def progress_state(progress: Progress) -> dict:
    return asdict(progress)


def progress_from_state(state: dict, path) -> Progress:
    try:
        return Progress(**state)
    except TypeError as error:
        raise UserError(f"{path}: unreadable training state ({error}); move it away or set "
                        f"train.resume=false to start over") from error
