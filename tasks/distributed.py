"""torchrun process groups and the few collectives the training and inference loops use.

A plain `python main.py` run has no process group: every helper then acts as the identity for a
single process (rank 0 of 1), so the loops call them unconditionally.
"""

import contextlib
import ctypes
import datetime
import gc
import hashlib
import logging
import os
import signal
import sys
from typing import NoReturn

import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1  # prctl(2) option: the signal this process gets when its parent dies
TIMEOUT = datetime.timedelta(minutes=30)  # a collective waits this long for a slow rank (e.g. rank 0 writing a checkpoint)


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def local_rank() -> int:
    """This process's index on its machine (torchrun's LOCAL_RANK); 0 without torchrun."""
    return int(os.environ.get("LOCAL_RANK", 0))


def die_with_launcher() -> None:
    """Have Linux SIGKILL this process when its parent, the torchrun launcher, dies (a launcher
    killed with SIGKILL cannot stop its workers): otherwise rank 0 would live on, holding the run
    folder's lock and writing into it, and the relaunched job would be refused. Elsewhere: nothing."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        logger.warning("cannot ask to end with the torchrun launcher: %s", os.strerror(ctypes.get_errno()))
    elif os.getppid() != parent:  # the launcher died before the request took effect
        os.kill(os.getpid(), signal.SIGKILL)


def init_process_group(device: torch.device) -> torch.device:
    """Join the process group torchrun describes in the environment (MASTER_ADDR, MASTER_PORT,
    RANK, WORLD_SIZE): NCCL on CUDA, each process on GPU LOCAL_RANK; gloo on CPU. Returns this
    process's device. Does nothing (returns `device`) when not launched by torchrun. The process
    ends with its launcher (`die_with_launcher`)."""
    if not launched_by_torchrun() or is_initialized():
        return device
    die_with_launcher()
    if device.type == "cuda":
        device = torch.device("cuda", local_rank())
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", timeout=TIMEOUT, device_id=device)
    else:
        dist.init_process_group("gloo", timeout=TIMEOUT)
    return device


def destroy_process_group() -> None:
    """Leave the process group while the interpreter is whole, after a garbage-collection pass, so
    that nothing left in a reference cycle (a DistributedDataParallel and its reducer, a work
    handle) still holds the group and gloo's threads end here rather than during the interpreter's
    teardown. (After a finished training the network is usually freed already; the pass makes sure.)"""
    if is_initialized():
        gc.collect()
        dist.destroy_process_group()


def exit_worker(status: int) -> NoReturn:
    """End a torchrun worker whose work is done and flushed with `status`, without the
    interpreter's teardown and the C++ static destructors after it: a third-party thread caught
    there mid-call (gloo's, OpenMP's, a daemon thread's) can abort the process ("terminate called
    without an active exception", SIGABRT), and torchrun would record a finished job as failed."""
    destroy_process_group()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(status)


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


def balanced_shares(costs: list[float], ranks: int) -> list[list[int]]:
    """The indices of `costs` for each of `ranks` ranks, in increasing order: greedily, the costliest
    first (the lower index on ties) goes to the least-loaded rank (the lower rank on ties), so that
    the ranks' totals end close to each other."""
    loads, shares = [0.0] * ranks, [[] for _ in range(ranks)]
    for index in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        least = min(range(ranks), key=lambda r: (loads[r], r))
        loads[least] += costs[index]
        shares[least].append(index)
    return [sorted(share) for share in shares]


def shard_by_cost(items: list, costs: list[float]) -> list:
    """This rank's share of `items` when item i costs costs[i] (balanced_shares), in their order."""
    return [items[index] for index in balanced_shares(costs, world_size())[rank()]]


def shared_store():
    """The process group's key-value store (torch's c10d store, reached by every rank), or None
    without a process group (or on a torch that does not expose it)."""
    if not is_initialized():
        return None
    get_store = getattr(dist.distributed_c10d, "_get_default_store", None)
    return get_store() if get_store is not None else None


def gather_objects(value) -> list:
    """[value of rank 0, value of rank 1, ...] on every rank (picklable values)."""
    if not is_initialized():
        return [value]
    gathered = [None] * world_size()
    dist.all_gather_object(gathered, value)
    return gathered


def barrier() -> None:
    if is_initialized():
        dist.barrier()


def broadcast_object(value, source: int = 0):
    """Rank `source`'s `value` on every rank."""
    if not is_initialized():
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=source)
    return holder[0]


def broadcast_buffers(model: torch.nn.Module) -> None:
    """Rank 0's buffers (BatchNorm running statistics) on every rank. DistributedDataParallel
    copies them from rank 0 only before each forward, so after a training step every rank holds
    statistics updated with its own batch, and checkpoints hold rank 0's."""
    if is_initialized():
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)


def gather_rows(values: torch.Tensor) -> torch.Tensor:
    """float64 (world_size, n) on the CPU: every rank's 1-D `values`, on every rank, in one
    collective (the only host sync of a training step)."""
    values = values.detach().to(torch.float64)
    if not is_initialized():
        return values[None].cpu()
    gathered = [torch.empty_like(values) for _ in range(world_size())]
    dist.all_gather(gathered, values)
    return torch.stack(gathered).cpu()


def parameters_digest(model: torch.nn.Module) -> str:
    """sha256 of every parameter's bytes, in name order (replicas with equal weights agree)."""
    digest = hashlib.sha256()
    for name, parameter in sorted(model.named_parameters()):
        digest.update(name.encode())
        digest.update(parameter.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
