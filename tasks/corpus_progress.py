"""The progress bar of a corpus run (tasks/corpus.py) over the videos and frames of every rank.

Each rank adds what it has done to counters in the process group's key-value store
(tasks.distributed.shared_store): at the end of each video and at most every REFRESH_S seconds
in between. Rank 0's bar (tqdm, on stderr) is over the frames of the whole job as estimated when
the corpus was listed, and shows the sums; a video counts its estimated frames once it has ended,
whether it was predicted, skipped or failed, so the bar ends full. Without a process group the
counters are this process's own.
"""

import time

from tqdm import tqdm

from tasks.distributed import barrier, shared_store, world_size

REFRESH_S = 0.5          # seconds between two sends of a rank's counts (and refreshes of the bar)
KEY_PREFIX = "3dcseg-corpus/"
COUNTERS = ("frames", "done", "skipped", "failed", "finished_ranks")


class JobProgress:
    """update(frames) as the engine's progress (inference.infer_sequence); start_video /
    end_video around each video; wait_for_all_ranks once this rank's videos are done."""

    def __init__(self, total_frames: int, total_videos: int, failed_before: int, show: bool):
        self.store = shared_store()
        self.local = dict.fromkeys(COUNTERS, 0)   # the counters without a store
        self.unsent = dict.fromkeys(COUNTERS, 0)
        self.total_videos, self.failed_before = total_videos, failed_before
        self.video_estimate = self.video_frames = 0
        self.last_sent = time.monotonic()
        self.shown = None  # the totals the bar shows
        self.bar = tqdm(total=total_frames, desc="infer", unit="frame", disable=not show)
        self._show()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.bar.close()

    def _counter(self, key: str, amount: int = 0) -> int:
        """Add `amount` to the job's counter `key`; its new value."""
        if self.store is None:
            self.local[key] += amount
            return self.local[key]
        return int(self.store.add(KEY_PREFIX + key, amount))

    def _send(self, force: bool = False) -> None:
        if not force and time.monotonic() - self.last_sent < REFRESH_S:
            return
        self.last_sent = time.monotonic()
        for key, amount in self.unsent.items():
            if amount:
                self._counter(key, amount)
        self.unsent = dict.fromkeys(COUNTERS, 0)
        self._show()

    def _show(self) -> None:
        if self.bar.disable:
            return
        totals = {key: self._counter(key) for key in COUNTERS}
        if totals == self.shown:
            return
        self.shown = totals
        ended = totals["done"] + totals["skipped"] + totals["failed"] + self.failed_before
        self.bar.n = min(totals["frames"], self.bar.total)
        self.bar.set_postfix_str(f"videos {ended}/{self.total_videos}, {totals['failed'] + self.failed_before} "
                                 f"failed", refresh=False)
        self.bar.refresh()

    def start_video(self, estimated_frames: int) -> None:
        self.video_estimate, self.video_frames = estimated_frames, 0

    def update(self, frames: int = 1) -> None:
        """`frames` more frames of the current video done (counted up to its estimate)."""
        counted = max(0, min(frames, self.video_estimate - self.video_frames))
        self.video_frames += counted
        self.unsent["frames"] += counted
        self._send()

    def end_video(self, status: str) -> None:
        """The current video ended: status done, skipped or failed."""
        self.unsent["frames"] += self.video_estimate - self.video_frames
        self.video_frames = self.video_estimate
        self.unsent[status] += 1
        self._send(force=True)

    def wait_for_all_ranks(self) -> None:
        """Until every rank has ended its videos (rank 0's bar moving meanwhile). The ranks wait
        here, polling the store, rather than in a collective, which would give up after
        tasks.distributed.TIMEOUT however long the slowest rank's share still takes."""
        self.unsent["finished_ranks"] += 1
        self._send(force=True)
        if self.store is None:
            barrier()  # a process group without a store reachable from here: the collective's wait
            return
        while self._counter("finished_ranks") < world_size():
            time.sleep(REFRESH_S)
            self._show()


def wait_for_rank_0(finished: bool) -> None:
    """Rank 0 (`finished`): say that its files are written; every other rank: wait until it says so
    (polling the store, without the collectives' timeout), so that no rank ends first: torchrun
    stops every worker once one has ended with a nonzero status, as it does when videos failed."""
    store = shared_store()
    if store is None:
        return
    if finished:
        store.set(KEY_PREFIX + "rank_0_finished", "1")
        return
    while not store.check([KEY_PREFIX + "rank_0_finished"]):
        time.sleep(REFRESH_S)
