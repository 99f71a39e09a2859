"""run_inference outputs: probability PNGs, overlay videos, re-runs that finish only what is left,
and summaries that merge across processes."""

import json

import av
import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import binary_erosion

from datasets.davis import index_davis
from datasets.io import read_mask
from datasets.transforms import crop_padding
from datasets.video import index_input
from inference_handlers.evaluation.protocols import merge_summaries
from inference_handlers.inference.runner import COMPLETE_MARKER, run_inference
from tasks.infer import outputs_fingerprint
from utils.config import InferenceConfig, load_config

from support.data_trees import write_mini_davis
from support.engines import make_engine
from support.paths import TINY_CONFIG
from support.videos import decode_all, write_video


@pytest.fixture
def three_sequences(tmp_path):
    root = write_mini_davis(tmp_path / "DAVIS", names=("bear", "cows", "dog"), num_frames=6)
    return index_davis(root, "2017/val.txt")


class CountingEngine:
    """The test engine, counting which sequences it predicts."""

    def __init__(self):
        self.inner = make_engine("shift_back", clip_length=4, clip_overlap=1)
        self.model = self.inner.model
        self.predicted = []

    def predict(self, sequence, with_frames=False):
        self.predicted.append(sequence.name)
        return self.inner.predict(sequence, with_frames)

    def release(self, prediction):
        self.inner.release(prediction)


def test_probability_pngs_hold_255_times_the_foreground_probability(tmp_path, three_sequences):
    engine = make_engine("shift_back", clip_length=4, clip_overlap=1)
    sequence = three_sequences[0]
    run_inference(engine, [sequence], InferenceConfig(save_probs=True), results_dir=tmp_path / "out",
                  show_progress=False)
    expected = {p.index: p for p in engine.predict(sequence)}
    for index in range(sequence.num_frames):
        with Image.open(tmp_path / "out/probs/bear" / f"{index:05d}.png") as image:
            assert image.mode == "L"
            stored = np.asarray(image)
        probability = crop_padding(expected[index].probabilities[1], expected[index].pad).numpy()
        assert np.abs(stored.astype(float) - 255 * probability).max() <= 0.5 + 1e-3


def test_overlay_video_tints_the_mask_leaves_the_rest_and_keeps_the_input_frame_rate(tmp_path):
    """Flat frames, bright left of a column that moves 4 px a frame and dark right of it: the
    test engine's mask is the bright part. More than 8 px (an H.264 transform block) away from
    the mask's outline, the overlay is frame x 0.5 + tint x 0.5 inside and the frame outside,
    within the codec's error on flat areas: 4:2:0 colour conversion and H.264 quantisation, up to
    4.5 grey levels measured, threshold 6 (a missing tint is off by 27 and more)."""
    frames = []
    for index in range(6):
        frame = np.full((64, 112, 3), 20, np.uint8)
        frame[:, :40 + 4 * index] = (200, 180, 160)
        frames.append(frame)
    (sequence,) = index_input(write_video(tmp_path / "walk.mp4", frames, rate=12))
    run_inference(make_engine("shift_back", clip_length=4, clip_overlap=1), [sequence], InferenceConfig(overlay=True),
                  results_dir=tmp_path / "out", show_progress=False)
    with av.open(str(tmp_path / "out/overlays/walk.mp4")) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.average_rate == 12
        overlays = [frame.to_ndarray(format="rgb24").astype(int) for frame in container.decode(stream)]
    inputs = [frame.astype(int) for frame in decode_all(tmp_path / "walk.mp4")]
    assert len(overlays) == len(inputs) == 6
    for index, (overlay, image) in enumerate(zip(overlays, inputs)):
        mask = read_mask(tmp_path / f"out/walk/{index:05d}.png") == 1
        assert np.array_equal(mask.any(axis=0), np.arange(112) < 40 + 4 * index)  # the bright part
        inside, outside = binary_erosion(mask, iterations=8), binary_erosion(~mask, iterations=8)
        tinted = (image + np.array([255, 40, 40])) / 2
        assert np.abs(overlay - tinted)[inside].max() <= 6, index
        assert np.abs(overlay - image)[outside].max() <= 6, index


def test_interrupted_run_completes_only_the_missing_sequences(tmp_path, three_sequences):
    out = tmp_path / "out"
    first = run_inference(CountingEngine(), three_sequences, InferenceConfig(), results_dir=out, show_progress=False,
                          fingerprint={"weights": "a"})
    (out / "cows" / COMPLETE_MARKER).unlink()  # interrupted inside cows: its masks may be partial
    (out / "cows" / "00005.png").unlink()
    for path in (out / "dog").iterdir():       # dog never started
        path.unlink()
    engine = CountingEngine()
    second = run_inference(engine, three_sequences, InferenceConfig(), results_dir=out, show_progress=False,
                           fingerprint={"weights": "a"})
    assert engine.predicted == ["cows", "dog"]
    assert second["metrics"] == first["metrics"] and second["num_frames"] == 18
    assert all(len(list((out / name).glob("*.png"))) == 6 for name in ("bear", "cows", "dog"))


def test_changed_settings_or_overwrite_predict_again(tmp_path, three_sequences):
    out = tmp_path / "out"
    run_inference(CountingEngine(), three_sequences[:1], InferenceConfig(), results_dir=out, show_progress=False,
                  fingerprint={"weights": "a"})
    for settings in (InferenceConfig(), InferenceConfig(overwrite=True),
                     InferenceConfig(mask_names="original_index", save_probs=True)):
        engine = CountingEngine()
        run_inference(engine, three_sequences[:1], settings, results_dir=out, show_progress=False,
                      fingerprint={"weights": "b"})
        assert engine.predicted == ["bear"], settings
    engine = CountingEngine()
    run_inference(engine, three_sequences[:1], InferenceConfig(mask_names="original_index"), results_dir=out,
                  show_progress=False, fingerprint={"weights": "b"})
    assert engine.predicted == ["bear"]  # the run before also wrote probabilities: other outputs
    marker = json.loads((out / "bear" / COMPLETE_MARKER).read_text())
    assert marker["files"] == [f"bear/{i:05d}.png" for i in range(6)]
    assert not list((out / "probs" / "bear").glob("*.png"))  # stale files of the earlier run removed


def test_outputs_of_infer_are_reused_until_a_setting_that_changes_them_does(tmp_path, three_sequences):
    weights, out = tmp_path / "weights.pth", tmp_path / "out"
    weights.write_bytes(b"weights")

    def predicted(*overrides) -> list[str]:
        cfg = load_config(TINY_CONFIG, list(overrides))
        engine = CountingEngine()
        run_inference(engine, three_sequences[:1], cfg.inference, results_dir=out, show_progress=False,
                      fingerprint=outputs_fingerprint(cfg, str(weights)))
        return engine.predicted

    assert predicted() == ["bear"]
    assert predicted() == []  # the marker, read back, equals what this run would write
    assert predicted("inference.batch_size=2", "inference.prefetch_frames=0", "inference.write_queue=0",
                     "inference.report=false", "model.backbone_weights=backbone.pth") == []
    for change in ("inference.tail=repeat_first", "inference.precision=bf16", "input.test_size=[32]",
                   "model.bn_eps=0.001"):
        assert predicted(change) == ["bear"], change
        assert predicted() == ["bear"]  # back to the first settings: predicted again


def test_summaries_of_shards_merge_into_the_summary_of_all_sequences(three_sequences):
    engine = make_engine("shift_back", clip_length=4, clip_overlap=1)
    whole = run_inference(engine, three_sequences, InferenceConfig(), show_progress=False)
    parts = [run_inference(engine, three_sequences[rank::2], InferenceConfig(), show_progress=False)
             for rank in range(2)]
    merged = merge_summaries(parts)
    assert merged["metrics"] == pytest.approx(whole["metrics"])
    assert merged["sequences"] == whole["sequences"] and merged["num_frames"] == 18
    assert whole["score_name"] == "J&F" and whole["score"] == pytest.approx(
        (whole["metrics"]["J_mean"] + whole["metrics"]["F_mean"]) / 2)
    assert whole["ground_truth"] == [three_sequences[0].ground_truth] != [""]


def test_skip_first_last_scores_all_but_two_frames_per_sequence(three_sequences):
    engine = make_engine("shift_back", clip_length=4, clip_overlap=1)
    summary = run_inference(engine, three_sequences, InferenceConfig(eval_frames="skip_first_last"),
                            show_progress=False)
    assert summary["frames"] == "skip_first_last" and summary["num_frames"] == 3 * 4
    assert summary["records"]["bear"]["frames"] == ["00001", "00002", "00003", "00004"]
