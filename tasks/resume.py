"""Stop and resume: whether a run resumes, from which checkpoint every process resumes, the
resumable data order, and SIGTERM / SIGINT handling.

A run that stops (signal, crash, node failure) and is started again with the same command
continues from saved_models/<name>/last.pth at the step after the checkpoint and ends with the
same weights as a run that never stopped: the data order of an epoch depends only on (seed,
epoch) and the position inside it is stored, as are every RNG state, the optimiser, the
learning-rate schedule and the GradScaler (checkpoints/training.py writes and restores them).
"""

import itertools
import logging
import signal
import threading
from pathlib import Path

from torch.utils.data import DistributedSampler

from checkpoints.training import LAST_CHECKPOINT, read_training_checkpoint, resume_position
from tasks.distributed import broadcast_object, gather_objects, rank, world_size

logger = logging.getLogger(__name__)
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


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


def resume_path(cfg, model_dir: Path, weights_path: str | None) -> Path | None:
    """saved_models/<name>/last.pth when this run resumes from it, else None (a fresh start).

    A run resumes when train.resume is true and its last.pth exists. Then `--wts` and
    `train.init_weights` are not used (they only start fresh runs), which is logged, so that
    the same command, run again, always continues. `--wts` naming the run's own last.pth thus
    resumes too. Every rank resumes when any rank sees a last.pth (`read_resume_checkpoint`).
    """
    last = model_dir / LAST_CHECKPOINT
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
    positions = gather_objects(None if checkpoint is None else resume_position(checkpoint))
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

    def __init__(self, stopping: str = "stopping after this step and writing last.pth"):
        self.received: str | None = None
        self.previous = {}
        self.stopping = stopping  # what the process does now, for the log line

    def _handle(self, signum, frame) -> None:
        if self.received and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = signal.Signals(signum).name
        logger.warning("%s received: %s (Ctrl-C again to stop at once)", self.received, self.stopping)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self.previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
