import numpy as np
import pytest
import torch
from PIL import Image

from datasets.clip_sampling import sliding_windows
from datasets.davis import index_davis
from inference_handlers.engine import SaliencyEngine
from inference_handlers.inference import run_inference

from conftest import write_mini_davis


class PositionModel(torch.nn.Module):
    """Foreground logit = image brightness + position of the frame within the clip, so that a
    frame's average depends on which windows (and how many copies) covered it."""

    def forward(self, clip):
        brightness = clip.mean(dim=1)                                       # (N, T, H, W)
        position = torch.arange(clip.shape[2], dtype=clip.dtype).view(1, -1, 1, 1)
        foreground = brightness - 0.5 + 0.05 * position
        return torch.stack([torch.zeros_like(foreground), foreground], dim=1)  # (N, 2, T, H, W)


def make_engine(tail, dense=False, clip_length=8, clip_overlap=3):
    return SaliencyEngine(PositionModel(), clip_length=clip_length, clip_overlap=clip_overlap,
                          dense=dense, tail=tail, resize_mode="unchanged", resize_size=[64],
                          device=torch.device("cpu"), precision="fp32")


def reference_average(engine, sequence):
    """Keep every window's probabilities, then average per frame (the original's lists)."""
    collected = {}
    windows = sliding_windows(sequence.num_frames, engine.clip_length, engine.stride, engine.tail)
    for window in windows:
        clip = torch.stack([engine._load(sequence.open_frames(), f)[0] for f in window.frames], dim=1)
        probabilities = engine._window_probabilities(clip)
        for t, (frame, counted) in enumerate(zip(window.frames, window.counted)):
            if counted:
                collected.setdefault(frame, []).append(probabilities[:, t])
    return {frame: torch.stack(maps).mean(0) for frame, maps in collected.items()}


@pytest.mark.parametrize("tail", ["repeat_first", "shift_back"])
@pytest.mark.parametrize("dense", [False, True])
def test_streaming_average_equals_average_of_all_windows(mini_davis, tail, dense):
    engine = make_engine(tail, dense)
    (sequence, _) = index_davis(mini_davis, "2017/val.txt")
    expected = reference_average(engine, sequence)
    predictions = list(engine.predict(sequence))
    assert [p.index for p in predictions] == list(range(sequence.num_frames))
    for prediction in predictions:
        assert torch.allclose(prediction.probabilities, expected[prediction.index], atol=1e-6)


def test_repeat_first_counts_every_copy_of_the_start_frame(mini_davis):
    (sequence, _) = index_davis(mini_davis, "2017/val.txt")  # 10 frames: windows start at 0 and 5
    engine = make_engine("repeat_first")
    prediction = {p.index: p for p in engine.predict(sequence)}[5]
    clip = torch.stack([engine._load(sequence.open_frames(), f)[0] for f in (5, 5, 5, 5, 6, 7, 8, 9)], dim=1)
    second = engine._window_probabilities(clip)[:, :4].mean(1)  # four copies of frame 5
    clip = torch.stack([engine._load(sequence.open_frames(), f)[0] for f in range(8)], dim=1)
    first = engine._window_probabilities(clip)[:, 5]
    expected = (first + 4 * second) / 5
    assert torch.allclose(prediction.probabilities, expected, atol=1e-6)


@pytest.mark.parametrize("tail", ["repeat_first", "shift_back"])
def test_engine_holds_at_most_one_window_of_frames(tmp_path, monkeypatch, tail):
    root = write_mini_davis(tmp_path / "long", names=("long",), num_frames=40)
    (sequence,) = index_davis(root, "2017/val.txt")
    engine = make_engine(tail, clip_length=4, clip_overlap=1)
    loaded = []
    original_load = engine._load
    monkeypatch.setattr(engine, "_load", lambda seq, f: loaded.append(f) or original_load(seq, f))
    for yielded, _ in enumerate(engine.predict(sequence), start=1):
        assert len(loaded) - yielded < engine.clip_length  # frames held, independent of length
    assert sorted(loaded) == list(range(sequence.num_frames))  # each frame read once


def test_labels_are_cropped_and_resized_to_the_frame(tmp_path, mini_davis):
    (sequence, _) = index_davis(mini_davis, "2017/val.txt")
    summary = run_inference(make_engine("shift_back"), [sequence], results_dir=tmp_path, show_progress=False)
    written = sorted((tmp_path / "bear").glob("*.png"))
    assert [p.stem for p in written] == [f"{i:05d}" for i in range(10)]
    with Image.open(written[0]) as image:
        assert image.mode == "P" and image.size == (112, 64)
        assert set(np.unique(np.asarray(image))) <= {0, 1}
        assert image.getpalette()[3:6] == [128, 0, 0]
    assert 0 <= summary["mean_J"] <= 1 and summary["num_frames"] == 10
