"""The engine on a live source (inference_handlers/inference/live.py), without threads or network: a
capture double hands out frames one by one, and the test sees how many were read when each
prediction came out."""

import numpy as np
import pytest
import torch

from datasets.clip_sampling import causal_windows, sliding_windows
from datasets.live_source import LiveFrame
from datasets.video import array_sequence
from inference_handlers.inference.engine import SaliencyEngine
from inference_handlers.inference.live import LatencyLog, stream_predictions
from utils.config import InferenceConfig, InputConfig
from utils.config_live import LiveConfig

CLIP_LENGTH = 8


class PositionModel(torch.nn.Module):
    """Foreground logit = brightness + the frame's position in the clip: a frame's mean depends on
    which windows covered it, at which positions."""

    def forward(self, clip):
        foreground = clip.mean(dim=1) - 0.5 + 0.05 * torch.arange(clip.shape[2], dtype=clip.dtype).view(1, -1, 1, 1)
        return torch.stack([torch.zeros_like(foreground), foreground], dim=1)


class ListCapture:
    """Capture double: the frames of a list, one per next_frame call; counts the calls."""

    def __init__(self, images):
        self.images, self.handed = list(images), 0

    def next_frame(self, should_stop=lambda: False):
        if self.handed == len(self.images) or should_stop():
            return None
        self.handed += 1
        return LiveFrame(self.images[self.handed - 1], self.handed - 1, self.handed / 25, 0.0)


def make_engine(tail="shift_back", window="centered", dense=False):
    inference = InferenceConfig(tail=tail, dense=dense, prefetch_frames=0, live=LiveConfig(window=window))
    return SaliencyEngine(PositionModel(), inference,
                          InputConfig(clip_length=CLIP_LENGTH, test_resize="unchanged"), torch.device("cpu"))


def random_frames(count, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (count, 24, 40, 3), dtype=np.uint8)


def streamed(engine, images):
    """[(index, frames read when it came out, probabilities, labels)] of a stream of `images`."""
    capture = ListCapture(images)
    results = []
    for frame, prediction in stream_predictions(engine, capture):
        results.append((frame.number, capture.handed, prediction.probabilities.clone(), prediction.labels()))
        engine.release(prediction)
    return results


def offline(engine, images):
    return [(p.index, p.probabilities.clone(), p.labels()) for p in engine.predict(array_sequence(images))]


@pytest.mark.parametrize("tail", ["shift_back", "repeat_first"])
@pytest.mark.parametrize("dense", [False, True])
@pytest.mark.parametrize("count", [1, 5, 8, 9, 13, 14, 26])
def test_centered_stream_masks_equal_those_of_the_same_frames_from_a_file(tail, dense, count):
    images = random_frames(count)
    live, reference = streamed(make_engine(tail, dense=dense), images), offline(make_engine(tail, dense=dense), images)
    assert [index for index, *_ in live] == list(range(count))
    for (index, _, probabilities, labels), (_, expected_probabilities, expected_labels) in zip(live, reference):
        assert torch.equal(probabilities, expected_probabilities), index
        assert np.array_equal(labels, expected_labels), index


@pytest.mark.parametrize("tail", ["shift_back", "repeat_first"])
def test_centered_stream_hands_a_frame_out_within_a_clip_of_frames(tail):
    """Delay in frames: shift_back waits for the clip_length-th frame after a frame (a stream
    ending earlier would end with a window covering it), repeat_first for the last window over
    it; before the end neither waits longer."""
    count = 30
    live = streamed(make_engine(tail), random_frames(count))
    stride = make_engine(tail).stride
    for index, read, *_ in live:
        if read < count:  # handed out before the source ended
            assert read <= index + CLIP_LENGTH + 1
            assert read >= min(index + CLIP_LENGTH if tail == "shift_back" else index + CLIP_LENGTH - stride + 1,
                               count)
    assert sum(read < count for _, read, *_ in live) >= count - 2 * CLIP_LENGTH


def test_causal_stream_hands_each_frame_out_before_reading_the_next():
    count = 17
    images = random_frames(count)
    live = streamed(make_engine(window="causal"), images)
    assert [(index, read) for index, read, *_ in live] == [(index, index + 1) for index in range(count)]
    reference = offline(make_engine(window="causal"), images)
    for (_, _, probabilities, _), (_, expected, _) in zip(live, reference):
        assert torch.equal(probabilities, expected)


def test_causal_masks_do_not_depend_on_later_frames():
    images = random_frames(12)
    changed = images.copy()
    changed[7:] = random_frames(5, seed=1)
    first, second = streamed(make_engine(window="causal"), images), streamed(make_engine(window="causal"), changed)
    for index in range(7):
        assert torch.equal(first[index][2], second[index][2])
    assert not torch.equal(first[7][2], second[7][2])


def test_causal_windows_end_at_their_frame_and_count_it_only():
    windows = causal_windows(10, 4)
    assert windows[0].frames == (0, 0, 0, 0) and windows[2].frames == (0, 0, 1, 2)
    assert windows[9].frames == (6, 7, 8, 9)
    assert all(window.counted == (False, False, False, True) for window in windows)
    assert causal_windows(3, 1)[2].frames == (2,)


def test_centered_offline_schedule_is_the_default_of_the_engine():
    engine = make_engine()
    assert engine.window_mode == "centered"
    assert sliding_windows(20, 8, engine.stride, "shift_back")[0].counted == (True,) * 8


def test_an_empty_stream_predicts_nothing():
    assert streamed(make_engine(), []) == [] and streamed(make_engine(window="causal"), []) == []


def test_latency_summary_counts_and_percentiles():
    log = LatencyLog()
    log.latencies_ms = [float(value) for value in range(1, 101)]
    summary = log.summary({"frames_read": 120, "frames_dropped": 20, "reconnects": 1, "end": "the stream ended"})
    assert summary["latency_ms"] == {"p50": 50.5, "p95": pytest.approx(95.05), "max": 100.0}
    assert (summary["frames_read"], summary["frames_processed"], summary["frames_dropped"]) == (120, 100, 20)
