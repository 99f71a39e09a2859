"""Run set-up shared by every task: process group, logging, seed, device, output folders,
resolved config.

Under torchrun every process joins the process group here (tasks/distributed.py); only rank 0
writes the log file and config.yaml, the other ranks log warnings and errors to stderr.
"""

import logging
import random
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from datasets.live_source import shown
from tasks.distributed import (init_process_group, is_initialized,
                               is_main_process, rank, world_size)
from utils.config import Task, dump_yaml
from utils.device import select_device
from utils.files import atomic_write_text, lock_folder, remove_temp_files, unlock_folder
from utils.versions import environment_versions

SAVED_MODELS = Path("saved_models")
RESULTS = Path("results")

# `extra=` of a log record for the log file (config.yaml's text, versions, the scores table that
# stdout shows): the console shows it only under --verbose
LOG_FILE_ONLY = {"log_file_only": True}
_output_lock = None  # the open lock file of the output folder this process writes into


@dataclass
class Run:
    model_dir: Path    # saved_models/<name>: checkpoints, config.yaml, train.log, tensorboard
    results_dir: Path  # results/<name>: masks and metrics.json; results/<name>/<input name> for --input
    device: torch.device
    versions: str      # software versions and code commit (environment_versions), logged at set-up


def is_for_the_console(record: logging.LogRecord) -> bool:
    """False for the records logged with `extra=LOG_FILE_ONLY`."""
    return not getattr(record, "log_file_only", False)


def setup_logging(log_file: Path | None = None, level: int = logging.INFO, prefix: str = "",
                  verbose: bool = False) -> None:
    """`level` logging to stderr and `log_file`, each line after `prefix`; the records logged with
    `extra=LOG_FILE_ONLY` reach the console only when `verbose`. Replaces the handlers of an
    earlier call only."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "is_3dcseg_handler", False)]:
        root.removeHandler(handler)
        handler.close()
    console = logging.StreamHandler(sys.stderr)
    if not verbose:
        console.addFilter(is_for_the_console)
    handlers = [console]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file))
    formatter = logging.Formatter(prefix + "%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for handler in handlers:
        handler.is_3dcseg_handler = True
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(level)


def write_resolved_config(cfg, run_dir: Path) -> None:
    """Write the resolved config to <run_dir>/config.yaml and the log file (LOG_FILE_ONLY)."""
    config_text = dump_yaml(cfg)
    atomic_write_text(run_dir / "config.yaml", config_text)
    logging.getLogger(__name__).info("resolved config:\n%s", config_text, extra=LOG_FILE_ONLY)


def hold_output_lock(folder: Path, purpose: str) -> list[Path]:
    """Refuse a second process writing into the same output folder (the lock of an earlier run in
    this process is released first); then delete the temp files a killed run left there and
    return their paths."""
    global _output_lock
    release_output_lock()
    _output_lock = lock_folder(folder, purpose)
    return remove_temp_files(folder)


def release_output_lock() -> None:
    """Let another process write into the output folder (also done by the system at exit)."""
    global _output_lock
    if _output_lock is not None:
        unlock_folder(_output_lock)
        _output_lock = None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def setup_run(cfg, task: Task, input_path: str | None = None, verbose: bool = False) -> Run:
    """Process group (under torchrun), output folder (checked writable, locked against a second
    process; rank 0 only), logging to the console and to a log file with the resolved config and
    the versions of the software (on the console too when `verbose`), seed and device. With
    `input_path` (`--input`), the results go to a run folder of their own,
    results/<name>/<input name>/ (inference.input_results_dir)."""
    results_dir = RESULTS / cfg.name
    if input_path is not None:
        from inference_handlers.inference.runner import input_results_dir
        results_dir = input_results_dir(results_dir, input_path)
    device = init_process_group(select_device(cfg.device))
    run = Run(model_dir=SAVED_MODELS / cfg.name, results_dir=results_dir, device=device,
              versions=environment_versions())
    run_dir = run.model_dir if task is Task.TRAIN else run.results_dir
    if is_main_process():
        removed = hold_output_lock(run_dir, "run" if task is Task.TRAIN else "results")
        setup_logging(run_dir / f"{task}.log", verbose=verbose)
        if removed:
            logging.getLogger(__name__).info("removed %d temp file(s) of an earlier run killed while writing: %s",
                                             len(removed), ", ".join(path.name for path in removed))
        write_resolved_config(cfg, run_dir)
    else:
        setup_logging(level=logging.WARNING, prefix=f"[rank {rank()}] ")
    seed_everything(cfg.seed)
    if run.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    processes = f", process 0 of {world_size()} ({torch.distributed.get_backend()})" if is_initialized() else ""
    logging.getLogger(__name__).info("task %s, config '%s', device %s%s", task, cfg.name, run.device, processes)
    logging.getLogger(__name__).info("versions: %s", run.versions, extra=LOG_FILE_ONLY)
    if input_path is not None:
        logging.getLogger(__name__).info("--input %s: outputs go to %s/, a run folder of its own (the test set's "
                                         "run stays in %s/)", shown(input_path), run.results_dir, RESULTS / cfg.name)
    return run
