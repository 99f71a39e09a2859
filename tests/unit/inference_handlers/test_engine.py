import numpy as np
import pytest
import torch
from PIL import Image

from datasets.clip_sampling import sliding_windows
from datasets.davis import index_davis
from datasets.transforms import crop_padding, resize_labels
from inference_handlers.inference.background import host_workers
from inference_handlers.inference.engine import SaliencyEngine, nearest_indices, resize_labels_on
from inference_handlers.inference.runner import run_inference
from utils.config import InferenceConfig, InputConfig

from support.data_trees import write_mini_davis
from support.engines import PositionModel, make_engine
from support.masks import masks_in, mean_j


def window_probabilities(engine, sequence, frames):
    """(K, T, H, W) probabilities of one window of `frames`, through the engine's own forward."""
    with sequence.open_frames() as reader:
        clip = torch.stack([engine._load(reader, f)[0] for f in frames], dim=1)
    return engine.forward_windows(clip[None])[0]


def reference_average(engine, sequence):
    """Keep every window's probabilities, then average per frame (the original's lists)."""
    collected = {}
    windows = sliding_windows(sequence.num_frames, engine.clip_length, engine.stride, engine.tail)
    for window in windows:
        probabilities = window_probabilities(engine, sequence, window.frames)
        for t, (frame, counted) in enumerate(zip(window.frames, window.counted)):
            if counted:
                collected.setdefault(frame, []).append(probabilities[:, t])
    return {frame: torch.stack(maps).mean(0) for frame, maps in collected.items()}


@pytest.mark.parametrize("batch_size, prefetch_frames", [(1, 0), (3, 2)])
@pytest.mark.parametrize("tail", ["repeat_first", "shift_back"])
@pytest.mark.parametrize("dense", [False, True])
def test_streaming_average_equals_average_of_all_windows(mini_davis, tail, dense, batch_size, prefetch_frames):
    engine = make_engine(tail, dense, batch_size=batch_size, prefetch_frames=prefetch_frames)
    (sequence, _) = index_davis(mini_davis, "2017/val.txt")
    expected = reference_average(engine, sequence)
    predictions = list(engine.predict(sequence))
    assert [p.index for p in predictions] == list(range(sequence.num_frames))
    for prediction in predictions:
        assert torch.allclose(prediction.probabilities, expected[prediction.index], atol=1e-6)
        labels = crop_padding(expected[prediction.index].argmax(dim=0), prediction.pad).to(torch.uint8)
        assert np.array_equal(prediction.labels(), labels.numpy())


def test_repeat_first_counts_every_copy_of_the_start_frame(mini_davis):
    (sequence, _) = index_davis(mini_davis, "2017/val.txt")  # 10 frames: windows start at 0 and 5
    engine = make_engine("repeat_first")
    prediction = {p.index: p for p in engine.predict(sequence)}[5]
    second = window_probabilities(engine, sequence, (5, 5, 5, 5, 6, 7, 8, 9))[:, :4].mean(1)  # four copies of frame 5
    first = window_probabilities(engine, sequence, range(8))[:, 5]
    expected = (first + 4 * second) / 5
    assert torch.allclose(prediction.probabilities, expected, atol=1e-6)


@pytest.mark.parametrize("tail", ["repeat_first", "shift_back"])
@pytest.mark.parametrize("batch_size, prefetch_frames", [(1, 0), (2, 3)])
def test_engine_holds_a_bounded_number_of_frames(tmp_path, monkeypatch, tail, batch_size, prefetch_frames):
    root = write_mini_davis(tmp_path / "long", names=("long",), num_frames=40)
    (sequence,) = index_davis(root, "2017/val.txt")
    engine = make_engine(tail, clip_length=4, clip_overlap=1, batch_size=batch_size, prefetch_frames=prefetch_frames)
    loaded = []
    original_load = engine._load
    monkeypatch.setattr(engine, "_load", lambda seq, f: loaded.append(f) or original_load(seq, f))
    # a batch spans clip_length + (batch_size - 1) * stride frames; the reader runs prefetch + 1
    # ahead, and its pool of threads (prefetch only) up to 2 frames per thread more
    bound = engine.clip_length + (batch_size - 1) * engine.stride + prefetch_frames + 1
    bound += 2 * host_workers() if prefetch_frames else 0
    for yielded, _ in enumerate(engine.predict(sequence), start=1):
        assert len(loaded) - yielded < bound  # frames held, independent of the sequence's length
    assert sorted(loaded) == list(range(sequence.num_frames))  # each frame read once


def test_labels_are_cropped_and_resized_to_the_frame(tmp_path, mini_davis):
    (sequence, _) = index_davis(mini_davis, "2017/val.txt")
    summary = run_inference(make_engine("shift_back"), [sequence], InferenceConfig(), results_dir=tmp_path,
                            show_progress=False)
    written = sorted((tmp_path / "bear").glob("*.png"))
    assert [p.stem for p in written] == [f"{i:05d}" for i in range(10)]
    with Image.open(written[0]) as image:
        assert image.mode == "P" and image.size == (112, 64)
        assert set(np.unique(np.asarray(image))) <= {0, 1}
        assert image.getpalette()[3:6] == [128, 0, 0]
    annotations = {"bear": masks_in(mini_davis / "Annotations_unsupervised/480p/bear")}
    assert summary["num_frames"] == 10 and summary["mean_J"] == pytest.approx(mean_j(tmp_path, annotations))


def test_device_resize_of_labels_equals_pil_nearest():
    rng = np.random.default_rng(0)
    sizes = [(int(a), int(b)) for a, b in rng.integers(1, 900, size=(400, 2))] + [(480, 854), (256, 240), (230, 432)]
    for in_size, out_size in sizes:
        row = (np.arange(in_size) % 251).astype(np.uint8)[None]
        expected = np.asarray(Image.fromarray(row).resize((out_size, 1), Image.NEAREST))[0]
        assert np.array_equal(row[0][nearest_indices(in_size, out_size)], expected), (in_size, out_size)
    labels = rng.integers(0, 2, (64, 96), dtype=np.uint8)
    for shape in ((64, 96), (100, 150), (37, 61), (480, 854)):
        assert np.array_equal(resize_labels_on(torch.from_numpy(labels), shape).numpy(), resize_labels(labels, shape))


def test_resized_frames_get_masks_at_their_size_on_disk(mini_davis):
    (sequence, _) = index_davis(mini_davis, "2017/val.txt")   # 64 x 112 frames, network at 40 x 70
    engine = SaliencyEngine(PositionModel(), InferenceConfig(clip_overlap=1, tail="shift_back", prefetch_frames=0),
                            InputConfig(clip_length=4, test_resize="resize_short_edge", test_size=[40]),
                            torch.device("cpu"))
    for prediction in engine.predict(sequence):
        assert prediction.probabilities.shape == (2, 64, 96)      # 40 x 70 padded to 64 x 96
        network_labels = prediction.probabilities.argmax(dim=0)[12:52, 13:83].to(torch.uint8).numpy()
        assert np.array_equal(prediction.labels(), resize_labels(network_labels, (64, 112)))


class ModeRecorder(torch.nn.Module):
    """PositionModel that records the autocast and inference-mode state of every forward."""

    def __init__(self):
        super().__init__()
        self.inner, self.states = PositionModel(), []

    def forward(self, clip):
        self.states.append((torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu"),
                            torch.is_inference_mode_enabled()))
        return self.inner(clip)


@pytest.mark.parametrize("precision, autocast", [("fp32", False), ("bf16", torch.bfloat16), ("fp16", False)])
def test_inference_precision_sets_autocast_under_inference_mode(mini_davis, precision, autocast):
    (sequence, _) = index_davis(mini_davis, "2017/val.txt")
    model = ModeRecorder()
    list(make_engine("shift_back", model=model, precision=precision).predict(sequence))  # fp16: CPU runs fp32
    assert model.states and set(model.states) == {(autocast, True)}
