"""The host side's shortcuts give exactly what the straightforward computations give: labels by
comparison = argmax (ties, NaN, infinities), frames prepared in place = .float() / 255 then
padding, RGB files read without a conversion = PIL's conversion, sums kept in reused buffers = the
windows' probabilities added in order, frames and buffers reused across windows and sequences = fresh
ones, F from a k-d tree on the masks' box = the toolkit's disk
dilation on whole frames, J by counting = the toolkit's sums, the thread pool's results in order,
masks written at a fast zlib level = the same image; the engine's own tensor work runs in one
intra-op thread, the network in torch's; and `tasks.benchmark --null-network` measures the host
side with ground truth."""

import json
import statistics
import threading

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import binary_dilation

from datasets.clip_sampling import sliding_windows
from datasets.davis import index_davis
from datasets.io import read_rgb, voc_palette
from datasets.transforms import frame_tensor, pad_clip, padding_for, prepare_test_frame
from inference_handlers.evaluation.metrics import boundary_f, boundary_radius, disk, region_similarity, seg2bmap
from inference_handlers.inference import engine as engine_module
from inference_handlers.inference.background import intra_op_threads, ordered_map
from inference_handlers.inference.engine import labels_of
from inference_handlers.inference.runner import run_inference
from inference_handlers.inference.writers import write_mask
from tasks import benchmark
from tools import benchmark as benchmark_tool
from utils.config import InferenceConfig

from support.data_trees import write_mini_davis
from support.engines import make_engine
from support.paths import TINY_CONFIG


def test_two_class_labels_equal_argmax_including_ties_and_nan():
    generator = torch.Generator().manual_seed(0)
    mean = torch.randint(0, 4, (2, 37, 53), generator=generator).float() / 4  # many exact ties
    mean[0, :3, :5], mean[1, 2:6, 4:9] = float("nan"), float("nan")        # NaN in one or both channels
    mean[1, 20, :4], mean[0, 21:23, 3:6] = float("inf"), float("-inf")     # infinities, some facing NaN
    mean[:, 30, 30] = float("inf")
    expected = mean.argmax(dim=0).to(torch.uint8)
    assert int((mean[0] == mean[1]).sum()) > 100
    assert torch.equal(labels_of(mean), expected)
    three = torch.rand(3, 8, 9, generator=generator)
    assert torch.equal(labels_of(three), three.argmax(dim=0).to(torch.uint8))


@pytest.mark.parametrize("shape", [(64, 96), (45, 70), (33, 31)])
def test_prepared_frame_equals_float_division_then_padding(shape):
    image = np.random.default_rng(1).integers(0, 256, (*shape, 3), dtype=np.uint8)
    tensor, pad = prepare_test_frame(image, "unchanged", None)
    expected = pad_clip(torch.from_numpy(image).permute(2, 0, 1).float() / 255, padding_for(*shape))
    assert pad == padding_for(*shape) and torch.equal(tensor, expected)


@pytest.mark.parametrize("shape", [(64, 96), (45, 70)])
def test_a_frame_prepared_into_used_memory_equals_a_fresh_one(shape):
    image = np.random.default_rng(2).integers(0, 256, (*shape, 3), dtype=np.uint8)
    pad = padding_for(*shape)
    fresh = frame_tensor(torch.from_numpy(image), pad)
    used = torch.full_like(fresh, float("nan"))  # e.g. another frame's values, padding included
    assert frame_tensor(torch.from_numpy(image), pad, out=used) is used and torch.equal(used, fresh)
    other_size = torch.empty(3, fresh.shape[1] + 32, fresh.shape[2])  # not used: a fresh tensor
    prepared = frame_tensor(torch.from_numpy(image), pad, out=other_size)
    assert prepared is not other_size and torch.equal(prepared, fresh)


class WindowModel(torch.nn.Module):
    """Logits that depend on the pixels and on the frame's place in the window, so that a frame's
    sum depends on which windows covered it; (B, 3, T, H, W) -> (B, 2, T, H, W)."""

    def __init__(self):
        super().__init__()
        self.threads = []  # torch.get_num_threads() inside each forward

    def forward(self, clips):
        self.threads.append(torch.get_num_threads())
        position = torch.arange(clips.shape[2], dtype=clips.dtype).view(1, -1, 1, 1)
        foreground = clips[:, 0] * 3.1 - clips[:, 2] + 0.37 * position
        return torch.stack([clips[:, 1] * 0.7, foreground], dim=1)


def window_engine(batch_size, prefetch_frames=0):
    return make_engine("repeat_first", clip_length=4, clip_overlap=1, model=WindowModel(),
                       prefetch_frames=prefetch_frames, batch_size=batch_size)


@pytest.mark.parametrize("batch_size", [1, 3])
def test_sums_in_reused_buffers_equal_the_windows_probabilities_added_in_order(mini_davis, batch_size):
    engine = window_engine(batch_size)
    (sequence, _) = index_davis(mini_davis, "2017/val.txt")
    with sequence.open_frames() as reader:
        frames = [engine._load(reader, index)[0] for index in range(sequence.num_frames)]
    sums, counts = {}, {}
    for window in sliding_windows(sequence.num_frames, 4, engine.stride, "repeat_first"):
        logits = engine.model(torch.stack([frames[f] for f in window.frames], dim=1)[None])
        probabilities = torch.softmax(logits, dim=1)[0]                 # a fresh tensor per window
        for t, (frame, counted) in enumerate(zip(window.frames, window.counted)):
            if counted:
                sums[frame] = probabilities[:, t] + sums[frame] if frame in sums else probabilities[:, t]
                counts[frame] = counts.get(frame, 0) + 1
    predictions = list(engine.predict(sequence))
    assert len(engine.model.threads) > 2 and max(counts.values()) > 1  # several batches, frames in several windows
    assert [p.index for p in predictions] == sorted(sums)
    for prediction in predictions:
        assert torch.equal(prediction.probabilities, sums[prediction.index] / counts[prediction.index])


@pytest.mark.filterwarnings("error")  # e.g. torch's warning that a buffer of another shape was resized
@pytest.mark.parametrize("batch_size, prefetch_frames", [(1, 0), (3, 2)])
def test_frames_and_buffers_reused_across_sequences_give_a_fresh_engines_results(tmp_path, batch_size,
                                                                                  prefetch_frames):
    """One engine predicts sequences of two sizes in turn (its clip and probability buffers, its
    frames' memory and that of released means are reused or made anew); a short sequence (fewer
    windows than a batch) comes before a longer one; every prediction equals that of a fresh engine."""
    sequences = [index_davis(write_mini_davis(tmp_path / name, names=(name,), num_frames=frames, height=height,
                                              width=width), "2017/val.txt")[0]
                 for name, frames, height, width in (("short", 5, 64, 112), ("small", 11, 40, 70),
                                                     ("long", 13, 64, 112))]

    def predictions(engine, sequence):
        kept = []
        for prediction in engine.predict(sequence):
            kept.append((prediction.index, prediction.probabilities.clone(), prediction.label_map.copy()))
            engine.release(prediction)  # its memory is reused for a later frame's mean
            assert prediction.probabilities is None
        return kept

    def settings():
        return dict(clip_length=4, clip_overlap=1, model=WindowModel(), batch_size=batch_size,
                    prefetch_frames=prefetch_frames)

    reused = make_engine("repeat_first", **settings())
    for sequence in sequences + sequences[::-1]:
        expected = predictions(make_engine("repeat_first", **settings()), sequence)
        got = predictions(reused, sequence)
        assert [index for index, _, _ in got] == [index for index, _, _ in expected]
        for (_, probabilities, labels), (_, fresh_probabilities, fresh_labels) in zip(got, expected):
            assert torch.equal(probabilities, fresh_probabilities) and np.array_equal(labels, fresh_labels)
    assert reused.frame_pool.take() is not None and reused.mean_pool.take() is not None  # went back ...
    assert set(reused.buffers) == {"clips", "probabilities"}  # ... and the buffers to the engine


def test_inference_hands_back_written_frames_and_writes_what_a_fresh_engine_writes(mini_davis, tmp_path):
    """Probability maps are written by the writer's threads while released means are reused for
    later frames: the files of an engine's second pass equal those of a fresh engine without threads."""
    sequences = index_davis(mini_davis, "2017/val.txt")
    engine = window_engine(2, prefetch_frames=3)
    for run in ("first", "second"):
        run_inference(engine, sequences, InferenceConfig(write_queue=3, save_probs=True), results_dir=tmp_path / run,
                      show_progress=False)
    assert engine.mean_pool.take() is not None
    run_inference(window_engine(2), sequences, InferenceConfig(save_probs=True), results_dir=tmp_path / "fresh",
                  show_progress=False)

    def files_of(folder):
        return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*.png"))}

    assert len(files_of(tmp_path / "fresh")) == 2 * 2 * 10  # masks and probability maps
    assert files_of(tmp_path / "second") == files_of(tmp_path / "fresh")


def test_the_network_keeps_torchs_threads_and_the_engines_own_work_runs_in_one(mini_davis, monkeypatch):
    engine = window_engine(2, prefetch_frames=3)  # frames prepared by the reader's pool of threads
    (sequence, _) = index_davis(mini_davis, "2017/val.txt")
    threads = {"labels": set(), "prepare": set()}

    def recording(name, function):
        return lambda *args: threads[name].add(torch.get_num_threads()) or function(*args)

    monkeypatch.setattr(engine_module, "labels_of", recording("labels", labels_of))
    monkeypatch.setattr(engine_module, "prepare_test_frame", recording("prepare", prepare_test_frame))
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        list(engine.predict(sequence))
        assert set(engine.model.threads) == {2} and threads == {"labels": {1}, "prepare": {1}}
        assert torch.get_num_threads() == 2  # restored
        threads["prepare"].clear()
        with sequence.open_frames() as reader:  # a new thread starts with torch's threads
            reading = threading.Thread(target=engine._load, args=(reader, 0))
            reading.start()
            reading.join()
        assert threads["prepare"] == {1}
    finally:
        torch.set_num_threads(previous)


def test_intra_op_threads_are_restored_after_an_exception():
    previous = torch.get_num_threads()
    with pytest.raises(KeyError):
        with intra_op_threads(previous + 1):
            assert torch.get_num_threads() == previous + 1
            raise KeyError("x")
    assert torch.get_num_threads() == previous


@pytest.mark.parametrize("mode, suffix", [("RGB", "jpg"), ("L", "jpg"), ("CMYK", "jpg"), ("P", "png"),
                                          ("RGBA", "png")])
def test_frames_read_without_a_conversion_of_rgb_files_equal_pils_rgb_conversion(tmp_path, mode, suffix):
    pixels = np.random.default_rng(4).integers(0, 256, (20, 30, 4), dtype=np.uint8)
    image = Image.fromarray(pixels, "RGBA")
    if mode != "RGBA":
        image = Image.fromarray(pixels[..., :3], "RGB").convert(mode)
    image.save(tmp_path / f"frame.{suffix}")
    with Image.open(tmp_path / f"frame.{suffix}") as stored:
        expected = np.array(stored.convert("RGB"))
    frame = read_rgb(tmp_path / f"frame.{suffix}")
    assert frame.flags.writeable and frame.dtype == np.uint8 and np.array_equal(frame, expected)


def test_masks_written_at_a_fast_zlib_level_are_the_default_levels_image(tmp_path):
    labels = np.zeros((48, 70), np.uint8)
    labels[10:30, 5:60], labels[40:, :3] = 1, 2
    written_path = write_mask(tmp_path, "sequence", "00000", labels)
    default = Image.fromarray(labels)
    default.putpalette(voc_palette())
    default.save(tmp_path / "default.png", format="PNG")
    with Image.open(written_path) as written, Image.open(tmp_path / "default.png") as expected:
        assert written.mode == expected.mode == "P" and written.getpalette() == expected.getpalette()
        assert np.array_equal(np.asarray(written), labels) and np.array_equal(np.asarray(expected), labels)


def test_null_network_reuses_its_logits_with_the_straightforward_values():
    network, generator = benchmark.NullNetwork(), torch.Generator().manual_seed(3)
    for batch in (2, 2, 1):
        clips = torch.rand(batch, 3, 4, 8, 9, generator=generator)
        logits = network(clips)
        expected = torch.stack([torch.zeros_like(clips[:, 0]), clips[:, 0] - clips[:, 1] - 0.35], dim=1)
        assert torch.equal(logits, expected)


def toolkit_boundary_f(prediction, ground_truth):
    """davis2017-evaluation's f_measure written out: boundaries dilated by the disk (cv2.dilate
    there, scipy's binary dilation here) on whole frames."""
    pred_boundary, gt_boundary = seg2bmap(prediction), seg2bmap(ground_truth)
    footprint = disk(boundary_radius(prediction.shape))
    gt_dilated = binary_dilation(gt_boundary, structure=footprint)
    pred_dilated = binary_dilation(pred_boundary, structure=footprint)
    n_pred, n_gt = pred_boundary.sum(), gt_boundary.sum()
    if n_pred == 0 and n_gt > 0:
        precision, recall = 1.0, 0.0
    elif n_pred > 0 and n_gt == 0:
        precision, recall = 0.0, 1.0
    elif n_pred == 0 and n_gt == 0:
        precision, recall = 1.0, 1.0
    else:
        precision = np.sum(pred_boundary & gt_dilated) / n_pred
        recall = np.sum(gt_boundary & pred_dilated) / n_gt
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def random_masks(rng, shape):
    """Blobs that touch the edges or not, noise (the distance-transform path), empty and full."""
    rows, cols = np.mgrid[:shape[0], :shape[1]]
    for _ in range(6):
        center, radii = rng.uniform(-10, shape[0] + 10, 2), rng.uniform(3, shape[0], 2)
        yield (((rows - center[0]) / radii[0]) ** 2 + ((cols - center[1] * 1.5) / radii[1]) ** 2 <= 1).astype(np.uint8)
    yield (rng.random(shape) > 0.5).astype(np.uint8)
    yield np.zeros(shape, np.uint8)
    yield np.ones(shape, np.uint8)
    corner = np.zeros(shape, np.uint8)
    corner[-1, -1] = 1
    yield corner


def test_boundary_f_and_j_equal_the_toolkits_computations_on_whole_frames():
    rng = np.random.default_rng(2)
    shape = (48, 70)
    masks = list(random_masks(rng, shape))
    for prediction in masks:
        for ground_truth in masks:
            assert boundary_f(prediction, ground_truth) == pytest.approx(
                toolkit_boundary_f(prediction, ground_truth), abs=1e-12)
            union = np.sum(prediction.astype(bool) | ground_truth.astype(bool))
            expected_j = 1.0 if union == 0 else np.sum(prediction.astype(bool) & ground_truth.astype(bool)) / union
            assert region_similarity(prediction, ground_truth * 255) == expected_j  # exactly


def test_ordered_map_keeps_the_order_and_raises_the_original_exception():
    failure = ValueError("frame 7")
    names = set()

    def slow_square(value):
        names.add(threading.current_thread().name)
        if value == 7:
            raise failure
        return value * value

    assert list(ordered_map(slow_square, range(7), workers=3)) == [v * v for v in range(7)]
    assert any(name.startswith("host-worker") for name in names)
    results = []
    with pytest.raises(ValueError) as raised:
        for value in ordered_map(slow_square, range(20), workers=3):
            results.append(value)
    assert raised.value is failure and results == [v * v for v in range(7)]


def test_null_network_benchmark_scores_ground_truth_and_reports_per_core(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    status = benchmark_tool.main(["-c", str(TINY_CONFIG), "--height", "48", "--width", "90", "--frames", "9",
                             "--null-network", "--end-to-end-runs", "3", "name=host"])
    assert status == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert row["network"] == "null" and "ms_per_window" not in row
    assert row["end_to_end_frames"] == 9 and row["end_to_end_cpu_ms_per_frame"] > 0
    runs = row["end_to_end_frames_per_s_each_run"]
    median_seconds = statistics.median(9 / rate for rate in runs)
    assert len(runs) == 3 and row["end_to_end_frames_per_s"] == pytest.approx(9 / median_seconds, rel=0.01)
    assert row["end_to_end_frames_per_s_per_core"] == pytest.approx(row["end_to_end_frames_per_s"] / row["cores"], abs=0.01)
    assert row["end_to_end_J&F"] > 0.9  # the stand-in finds the ellipse that the ground truth holds
