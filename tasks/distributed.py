"""torchrun process groups and the few collectives the training and inference loops use.

A plain `python main.py` run has no process group: every helper then acts as the identity for a
single process (rank 0 of 1), so the loops call them unconditionally.
"""

import os

import torch
import torch.distributed as dist


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if is_initialized() else 1


def is_main_process() -> bool:
    return rank() == 0


def shard(items: list) -> list:
    """This rank's share of `items` (every world_size-th item, starting at its rank)."""
    return list(items)[rank()::world_size()]


def gather_objects(value) -> list:
    """[value of rank 0, value of rank 1, ...] on every rank (picklable values)."""
    if not is_initialized():
        return [value]
    gathered = [None] * world_size()
    dist.all_gather_object(gathered, value)
    return gathered


def mean_over_ranks(value: float, device: torch.device) -> float:
    """The mean of a scalar over all ranks."""
    if not is_initialized():
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return float(tensor.item()) / world_size()


def barrier() -> None:
    if is_initialized():
        dist.barrier()
