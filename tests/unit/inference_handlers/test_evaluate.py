"""`python -m inference_handlers.evaluate`: folders of predictions scored with the code of
`--task infer`, whatever the layout of the ground truth."""

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from datasets.davis import index_davis
from datasets.io import read_mask, write_palette_png
from inference_handlers.inference.runner import run_inference
from tools.evaluate import main as evaluate_main
from utils.config import InferenceConfig

from support.data_trees import write_davis2016, write_mini_davis
from support.engines import make_engine


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


TRAIN = [f"train_{n:04d}" for n in range(30)]
VAL = [f"val_{n:04d}" for n in range(20)]


@pytest.fixture
def davis2016_val_predicted(tmp_path):
    """A DAVIS-2016-like tree whose Annotations/480p holds 50 sequences (30 train, 20 val), and
    predictions for the 20 val ones (each its ground truth shifted by a few pixels, so that the
    scores differ); returns (DAVIS root, predictions)."""
    root = write_davis2016(tmp_path / "DAVIS", names=TRAIN + VAL, num_frames=3)
    for number, name in enumerate(VAL):
        for mask in sorted((root / "Annotations/480p" / name).glob("*.png")):
            write_palette_png(tmp_path / "pred" / name / mask.name, np.roll(read_mask(mask) != 0, number % 7, axis=1))
    return root, tmp_path / "pred"


def alone(tmp_path, root, names: list[str]) -> dict:
    """The metrics of the predictions of `names` against a mask tree of those sequences alone."""
    for name in names:
        shutil.copytree(root / "Annotations/480p" / name, tmp_path / "alone" / name)
    scores = evaluate(tmp_path, "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "alone"))
    assert scores["gt_sequences_left_out"] == 0 and scores["num_sequences"] == len(names)
    return scores


def scores_of(metrics: dict) -> tuple:
    return metrics["metrics"], metrics["sequences"], metrics["num_frames"], metrics["num_sequences"]


def test_annotation_tree_with_more_sequences_scores_the_predicted_ones(tmp_path, davis2016_val_predicted, caplog):
    """The issue's case: DAVIS-2016's Annotations/480p holds all 50 sequences, the 20 of val were
    predicted; the 20 score as they do against a tree of those 20 alone."""
    root, pred = davis2016_val_predicted
    expected = alone(tmp_path, root, VAL)
    caplog.set_level("INFO")
    scores = evaluate(tmp_path, "--pred", str(pred), "--gt", str(root / "Annotations/480p"), "--report")
    assert scores_of(scores) == scores_of(expected) and scores["gt_sequences_left_out"] == 30
    assert [line for line in caplog.messages if "left out" in line] == [
        f"30 of 50 ground-truth sequences left out (no folder in {pred}): train_0000, train_0001, train_0002, ..."]
    header = json.loads((tmp_path / "scores/per_frame.json").read_text())["header"]
    assert header["gt_left_out"].startswith(f"30 of 50 sequences (no folder in {pred}): train_0000, train_0001")
    assert "ground truth left out" in (tmp_path / "scores/report.html").read_text()


@pytest.mark.parametrize("line_format", ["names", "davis2016_pairs"])
def test_split_file_restricts_the_sequences_scored(tmp_path, davis2016_val_predicted, line_format):
    root, pred = davis2016_val_predicted
    listed = VAL[5:]
    pairs = [f"/JPEGImages/480p/{name}/{i:05d}.jpg /Annotations/480p/{name}/{i:05d}.png"
             for name in listed for i in range(3)]
    lines = listed if line_format == "names" else pairs
    (tmp_path / "val.txt").write_text("\n".join(lines) + "\n")
    scores = evaluate(tmp_path, "--pred", str(pred), "--gt", str(root / "Annotations/480p"),
                      "--split", str(tmp_path / "val.txt"))
    assert scores_of(scores) == scores_of(alone(tmp_path, root, listed))
    assert scores["gt_sequences_left_out"] == 35


def last_error(capsys, *args) -> str:
    capsys.readouterr()
    assert evaluate_main(list(args)) == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_a_listed_sequence_without_predictions_is_an_error(tmp_path, davis2016_val_predicted, capsys):
    root, pred = davis2016_val_predicted
    (tmp_path / "val.txt").write_text("val_0000\ntrain_0003\n")
    assert last_error(capsys, "--pred", str(pred), "--gt", str(root / "Annotations/480p"),
                      "--split", str(tmp_path / "val.txt")) == (
        f"error: --split {tmp_path / 'val.txt'}: 1 listed sequence(s) have no prediction folder in {pred}: train_0003")


def test_a_partly_predicted_sequence_stays_an_error(tmp_path, davis2016_val_predicted, capsys):
    root, pred = davis2016_val_predicted
    (pred / "val_0003/00001.png").unlink()
    assert last_error(capsys, "--pred", str(pred), "--gt", str(root / "Annotations/480p")) == (
        f"error: --pred: no prediction for 1 annotated frames in {pred}, e.g. val_0003/00001")
