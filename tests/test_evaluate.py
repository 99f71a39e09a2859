"""`python -m inference_handlers.evaluate`: folders of predictions scored with the code of
`--task infer`, whatever the layout of the ground truth."""

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from datasets.davis import index_davis
from datasets.io import write_palette_png
from inference_handlers.evaluate import main as evaluate_main
from inference_handlers.inference import run_inference
from utils.config import InferenceConfig

from conftest import write_mini_davis
from test_engine import make_engine


@pytest.fixture
def predicted(tmp_path):
    """A mini DAVIS tree and the test engine's masks and probability PNGs for it."""
    root = write_mini_davis(tmp_path / "DAVIS")
    summary = run_inference(make_engine("shift_back", clip_length=4, clip_overlap=1),
                            index_davis(root, "2017/val.txt"), InferenceConfig(save_probs=True), protocol="saliency",
                            results_dir=tmp_path / "results", show_progress=False)
    return root, tmp_path / "results", summary


def evaluate(tmp_path, *args):
    out = tmp_path / "scores"
    assert evaluate_main([*args, "--out", str(out)]) == 0
    return json.loads((out / "metrics.json").read_text())


def test_masks_score_as_in_inference(tmp_path, predicted, capsys):
    root, results, _ = predicted
    engine = make_engine("shift_back", clip_length=4, clip_overlap=1)
    expected = run_inference(engine, index_davis(root, "2017/val.txt"), InferenceConfig(), show_progress=False)
    from_tree = evaluate(tmp_path, "--pred", str(results), "--gt", str(root / "Annotations_unsupervised/480p"),
                         "--protocol", "davis2016")
    table = capsys.readouterr().out.splitlines()  # the answer, on stdout
    assert table[0].startswith("protocol davis2016") and table[-1] == "overall: " + ", ".join(
        f"{key} {value:.4f}" for key, value in from_tree["metrics"].items())
    from_dataset = evaluate(tmp_path, "--pred", str(results), "--gt", str(root), "--dataset", "davis",
                            "--split", "2017/val.txt")
    for scores in (from_tree, from_dataset):
        assert scores["metrics"] == pytest.approx(expected["metrics"])
        assert scores["score_name"] == "J&F" and scores["num_frames"] == 20
    assert from_dataset["ground_truth"] == expected["ground_truth"]
    assert (tmp_path / "scores/metrics.csv").read_text().startswith("sequence,frames,J_mean")


def test_probability_pngs_score_as_in_inference(tmp_path, predicted):
    root, results, summary = predicted
    scores = evaluate(tmp_path, "--pred", str(results / "probs"), "--gt", str(root / "Annotations_unsupervised/480p"),
                      "--protocol", "saliency")
    for key in ("maxF", "MAE", "S", "F_pooled_beta1"):
        assert scores["metrics"][key] == pytest.approx(summary["metrics"][key]), key


def test_skip_first_last_drops_two_frames_per_sequence(tmp_path, predicted):
    root, results, _ = predicted
    scores = evaluate(tmp_path, "--pred", str(results), "--gt", str(root / "Annotations_unsupervised/480p"),
                      "--frames", "skip_first_last")
    assert scores["frames"] == "skip_first_last" and scores["num_frames"] == 2 * 8


def test_sparse_ground_truth_matched_by_frame_number(tmp_path):
    truth = np.zeros((16, 16), np.uint8)
    truth[4:12, 4:12] = 1
    for number in (1, 20):  # FBMS-style names, annotated frames only
        write_palette_png(tmp_path / "gt/cars1" / f"cars1_{number:03d}.png", truth)
    for number in range(1, 25):  # the original's output names: 5-digit frame numbers
        write_palette_png(tmp_path / "pred/cars1" / f"{number:05d}.png", truth if number != 20 else 0 * truth)
    scores = evaluate(tmp_path, "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--protocol", "fbms")
    assert scores["num_frames"] == 2 and scores["score"] == pytest.approx(0.5)


def test_flat_ground_truth_folder_is_matched_by_frame_name(tmp_path):
    truth = np.zeros((16, 16), np.uint8)
    truth[4:12, 4:12] = 255
    (tmp_path / "GroundTruth").mkdir()
    Image.fromarray(truth).save(tmp_path / "GroundTruth/boat_001.bmp")
    Image.fromarray(truth).save(tmp_path / "GroundTruth/car_001.bmp")
    for name in ("boat", "car"):
        (tmp_path / "pred" / name).mkdir(parents=True)
        for frame in ("001", "002"):
            prediction = truth if name == "boat" else 255 - truth
            Image.fromarray(prediction).save(tmp_path / "pred" / name / f"{name}_{frame}.png")
    scores = evaluate(tmp_path, "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "GroundTruth"),
                      "--protocol", "saliency")
    assert scores["num_frames"] == 2
    assert scores["sequences"]["boat"]["MAE"] == pytest.approx(0.0)
    assert scores["sequences"]["car"]["MAE"] == pytest.approx(1.0)


def test_missing_prediction_is_one_error_line(tmp_path, predicted, capsys):
    root, results, _ = predicted
    shutil.copytree(results, tmp_path / "partial")
    (tmp_path / "partial/cows/00003.png").unlink()
    status = evaluate_main(["--pred", str(tmp_path / "partial"), "--gt", str(root / "Annotations_unsupervised/480p")])
    stderr = capsys.readouterr().err
    assert status == 2 and "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: --pred: no prediction for 1 annotated frames") and "cows/00003" in last
