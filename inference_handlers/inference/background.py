"""Background threads of the inference pipeline: a reader that runs ahead of the network
(`prefetch`) and a writer that runs behind it (`consume_in_background`).

Each talks to the calling thread through a bounded queue, so memory stays flat in the length of
the video, and hands its exception to the calling thread, where it is raised as the original
exception object. Depth 0 runs everything in the calling thread. Threads are enough: decoding,
resizing, PNG encoding and the network all release the GIL for their heavy parts.
"""

import collections
import contextlib
import os
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

import torch

Result = TypeVar("Result")

POLL_SECONDS = 0.05  # how often a blocked hand-over checks whether the other side has stopped


class _Failure:
    """An exception raised by the background producer, on its way to the consumer."""

    def __init__(self, error: BaseException):
        self.error = error


class _Aborted(Exception):
    """Raised inside the background consumer when the producing thread failed."""


_DONE, _ABORT = object(), object()


def _put(channel: queue.Queue, item, stop: threading.Event) -> bool:
    """Put `item` into `channel`, waiting for room; False (item dropped) once `stop` is set."""
    while not stop.is_set():
        try:
            channel.put(item, timeout=POLL_SECONDS)
            return True
        except queue.Full:
            continue
    return False


def prefetch(items: Iterable, depth: int, name: str = "prefetch") -> Iterator:
    """Iterate `items` in a background thread, at most `depth` items ahead of the caller.

    `items` is iterated, and closed (a generator's `finally` and `with` blocks run), in the
    background thread only. Closing the returned generator stops that thread.
    """
    if depth <= 0:
        yield from items
        return
    channel, stop = queue.Queue(maxsize=depth), threading.Event()

    def produce():
        try:
            for item in items:
                if not _put(channel, item, stop):
                    break
            else:
                _put(channel, _DONE, stop)
        except BaseException as error:  # handed to the consumer, raised there
            _put(channel, _Failure(error), stop)
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = channel.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()


def consume_in_background(consume: Callable[[Iterator], Result], items: Iterable, depth: int,
                          name: str = "writer") -> Result:
    """Run `consume(iterator)` in a background thread while the calling thread iterates `items`
    and hands them over through a queue of `depth`; return consume's result once it has finished,
    so everything it writes is written when this returns.

    An exception of `consume` stops the hand-over; one of `items` makes the iterator inside
    `consume` raise (so a file it was writing is not completed); either is raised here.
    """
    if depth <= 0:
        return consume(iter(items))
    channel, stop, outcome = queue.Queue(maxsize=depth), threading.Event(), {}

    def handed_over():
        while True:
            item = channel.get()
            if item is _DONE:
                return
            if item is _ABORT:
                raise _Aborted
            yield item

    def run():
        try:
            outcome["result"] = consume(handed_over())
        except _Aborted:
            pass
        except BaseException as error:  # raised in the calling thread below
            outcome["error"] = error
        finally:
            stop.set()

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    try:
        for item in items:
            if not _put(channel, item, stop):
                break  # the consumer has stopped
        else:
            _put(channel, _DONE, stop)
    except BaseException:
        _put(channel, _ABORT, stop)
        thread.join()
        raise
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("result")


def host_workers() -> int:
    """Threads for the per-frame host work: the cores this process may run on."""
    return len(os.sched_getaffinity(0))


@contextlib.contextmanager
def intra_op_threads(count: int) -> Iterator[None]:
    """torch's intra-op threads for what the calling thread runs inside the block; the previous
    count afterwards (torch keeps the count per thread; a thread that runs its first torch
    operation meanwhile starts with `count`). The engine runs its own tensor work with one
    (preparing frames, stacking, softmax, sums, label maps): memory-bound, it gains little from a
    second, and between its short operations OpenMP's idle threads spin, taking the cores from the
    reader and writer threads (on 2 cores with a stand-in network: 40 instead of 17 ms of CPU per
    480p frame)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def ordered_map(function: Callable, items: Iterable, workers: int) -> Iterator:
    """`map(function, items)` computed by a pool of `workers` threads, at most 2 * workers items
    ahead of the caller, results in the order of `items`; workers <= 1: in the calling thread.
    An exception of `function` is raised here (the original object) when its item's turn comes;
    closing the iterator waits for the items in flight and drops the rest."""
    if workers <= 1:
        yield from map(function, items)
        return
    pending = collections.deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="host-worker") as pool:
        try:
            for item in items:
                pending.append(pool.submit(function, item))
                if len(pending) >= 2 * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
