"""Run set-up shared by every task: process group, logging, seed, device, output folders,
resolved config.

Under torchrun every process joins the process group here (tasks/distributed.py); only rank 0
writes the log file and config.yaml, the other ranks log warnings and errors to stderr.
"""

import atexit
import logging
import random
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tasks.distributed import (destroy_process_group, init_process_group, is_initialized,
                               is_main_process, rank, world_size)
from utils.config import dump_yaml
from utils.errors import UserError
from utils.files import atomic_write_text

SAVED_MODELS = Path("saved_models")
RESULTS = Path("results")


@dataclass
class Run:
    model_dir: Path    # saved_models/<name>: checkpoints, config.yaml, train.log, tensorboard
    results_dir: Path  # results/<name>: masks and metrics.json
    device: torch.device


def select_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("device = cuda, but no CUDA device is available (use device=auto or cpu)")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def setup_logging(log_file: Path | None = None, level: int = logging.INFO, prefix: str = "") -> None:
    """`level` logging to stderr and `log_file`, each line after `prefix`; replaces the handlers
    of an earlier call only."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "is_3dcseg_handler", False)]:
        root.removeHandler(handler)
        handler.close()
    handlers = [logging.StreamHandler(sys.stderr)]
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
    """Log the resolved config and write it to <run_dir>/config.yaml."""
    config_text = dump_yaml(cfg)
    atomic_write_text(run_dir / "config.yaml", config_text)
    logging.getLogger(__name__).info("resolved config:\n%s", config_text)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def setup_run(cfg, task: str) -> Run:
    """Process group (under torchrun), logging to the console and to a log file, seed, device and
    output folders."""
    device = init_process_group(select_device(cfg.device))
    if is_initialized():
        atexit.register(destroy_process_group)
    run = Run(model_dir=SAVED_MODELS / cfg.name, results_dir=RESULTS / cfg.name, device=device)
    run_dir = run.model_dir if task == "train" else run.results_dir
    if is_main_process():
        setup_logging(run_dir / f"{task}.log")
        write_resolved_config(cfg, run_dir)
    else:
        setup_logging(level=logging.WARNING, prefix=f"[rank {rank()}] ")
    seed_everything(cfg.seed)
    if run.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    processes = f", process 0 of {world_size()} ({torch.distributed.get_backend()})" if is_initialized() else ""
    logging.getLogger(__name__).info("task %s, config '%s', device %s%s", task, cfg.name, run.device, processes)
    return run
