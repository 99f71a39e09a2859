"""The capture thread's drop policy against a network slower than the source: a source double
that hands out frames fast, and a network double that sleeps. Assertions count frames and
forward passes, not milliseconds."""

import time

import numpy as np
import pytest
import torch

from datasets.live_source import Capture
from inference_handlers.inference.engine import SaliencyEngine
from inference_handlers.inference.live import LatencyLog, stream_predictions
from utils.config import InferenceConfig, InputConfig
from utils.config_live import LiveConfig

SOURCE_FRAMES = 60
FORWARD_S = 0.03   # the slow network's sleep per forward
SOURCE_GAP_S = 0.002  # between the fast source's frames


class SleepingNetwork(torch.nn.Module):
    """Sleeps FORWARD_S per forward and records (start, end) of each."""

    def __init__(self):
        super().__init__()
        self.forwards = []

    def forward(self, clip):
        start = time.monotonic()
        time.sleep(FORWARD_S)
        foreground = clip.mean(dim=1) - 0.5
        self.forwards.append((start, time.monotonic()))
        return torch.stack([torch.zeros_like(foreground), foreground], dim=1)


def fast_source():
    rng = np.random.default_rng(0)
    for index in range(SOURCE_FRAMES):
        time.sleep(SOURCE_GAP_S)
        yield rng.integers(0, 256, (16, 24, 3), dtype=np.uint8), index / 500


def run(drop, window, queue_frames=2):
    live = LiveConfig(window=window, drop=drop, queue_frames=queue_frames, read_timeout=10, reconnect=0)
    network = SleepingNetwork()
    engine = SaliencyEngine(network, InferenceConfig(prefetch_frames=0, live=live),
                            InputConfig(clip_length=4, test_resize="unchanged"), torch.device("cpu"))
    capture = Capture(fast_source, "double", live, drop, reconnectable=False).start()
    latency, outputs = LatencyLog(), []
    deadline = time.monotonic() + 120
    for frame, prediction in stream_predictions(engine, capture, lambda: time.monotonic() > deadline):
        latency.add(frame)
        outputs.append((frame, time.monotonic()))
        engine.release(prediction)
    capture.stop()
    assert time.monotonic() < deadline
    return capture, latency.summary(capture.counts()), outputs, network.forwards


@pytest.mark.parametrize("window", ["causal", "centered"])
def test_drop_oldest_drops_and_counts_what_the_network_cannot_take(window):
    capture, summary, outputs, _ = run("oldest", window)
    assert summary["frames_read"] == SOURCE_FRAMES
    assert summary["frames_dropped"] > 0
    assert summary["frames_processed"] + summary["frames_dropped"] == SOURCE_FRAMES
    numbers = [frame.number for frame, _ in outputs]
    assert numbers == sorted(numbers) and numbers[-1] == SOURCE_FRAMES - 1  # the newest frames are kept


@pytest.mark.parametrize("window", ["causal", "centered"])
def test_drop_none_processes_every_frame(window):
    capture, summary, outputs, _ = run("none", window)
    assert summary["frames_dropped"] == 0
    assert summary["frames_processed"] == summary["frames_read"] == SOURCE_FRAMES
    assert [frame.number for frame, _ in outputs] == list(range(SOURCE_FRAMES))


def test_causal_latency_under_drop_oldest_is_bounded_by_the_queue_in_forwards():
    """A frame waits for at most the queued frames' windows and its own: queue_frames + 1
    forwards start after it is captured and end before its mask comes out (plus one running
    when it was captured)."""
    queue_frames = 2
    _, _, outputs, forwards = run("oldest", "causal", queue_frames)
    for frame, handed_out in outputs:
        waited = sum(1 for start, end in forwards if end > frame.captured and start < handed_out)
        assert waited <= queue_frames + 2, (frame.number, waited)


def test_a_longer_queue_makes_frames_wait_longer():
    """The counterpart of the bound above, so that it is not met by chance: a queue of 40 frames
    lets the newest frames wait for many forwards."""
    _, _, outputs, forwards = run("oldest", "causal", queue_frames=40)
    waits = [sum(1 for start, end in forwards if end > frame.captured and start < handed_out)
             for frame, handed_out in outputs]
    assert max(waits) > 10


def test_drop_none_holds_the_source_back_to_the_network():
    """Without dropping, the source is read no further ahead of the network than the queue: the
    last frame is decoded only after the windows of all but the last queue_frames + 1 frames."""
    queue_frames = 2
    _, _, outputs, forwards = run("none", "causal", queue_frames)
    last = outputs[-1][0]
    assert sum(1 for _, end in forwards if end <= last.captured) >= SOURCE_FRAMES - queue_frames - 2


def test_capture_stop_releases_a_source_blocked_by_drop_none():
    live = LiveConfig(drop="none", queue_frames=1, read_timeout=10)
    capture = Capture(fast_source, "double", live, "none", reconnectable=False).start()
    time.sleep(0.1)
    assert capture.read == 1  # the queue is full: the source waits
    capture.stop()
    assert not capture.thread.is_alive()
