"""The comparison of two runs (inference_handlers/evaluation/compare.py): a refusal names the run that has
no scored frame and why; changes are shown so that a small one never reads as zero, and drawn on
an axis scaled to them. Also the J-over-time grid's titles and axis labels."""

import json

import numpy as np
import pytest

import main
from checkpoints.training import save_checkpoint
from datasets.io import read_rgb
from inference_handlers.evaluation.compare import format_change
from inference_handlers.evaluation.report_figures import LOW_J, bar_figure, change_limits, low_frames_title, time_figure
from network import build_model
from tools.compare import main as compare_main
from utils.config import load_config, to_dict

from support.data_trees import write_mini_davis
from support.paths import TINY_CONFIG
from support.videos import write_video


@pytest.fixture
def runs(tmp_path, monkeypatch):
    """In tmp_path (the working folder): a test-set run results/tiny (one 4-frame sequence), and
    an --input run of a video of its frames, results/tiny/walk; returns the video's path."""
    cfg = load_config(TINY_CONFIG)
    weights = tmp_path / "tiny.pth"
    save_checkpoint(weights, model_state=build_model(cfg.model).state_dict(), epoch=0, iteration=0, config=to_dict(cfg))
    root = write_mini_davis(tmp_path / "DAVIS", names=("bear",), num_frames=4)
    video = write_video(tmp_path / "walk.mp4", [read_rgb(p) for p in sorted(root.glob("JPEGImages/480p/bear/*.jpg"))])
    monkeypatch.chdir(tmp_path)
    base = ["-c", str(TINY_CONFIG), "--task", "infer", "--wts", str(weights), f"data.test_root={root}"]
    assert main.main(base) == 0
    assert main.main(base + ["--input", str(video)]) == 0
    return video, base


def refusal(capsys, a, b) -> str:
    capsys.readouterr()
    assert compare_main(["--runs", a, b]) == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_the_refusal_names_the_run_without_scores_and_why(runs, capsys):
    video, _ = runs
    assert refusal(capsys, "results/tiny", "results/tiny/walk") == (
        f"error: cannot compare results/tiny and results/tiny/walk: results/tiny/walk has no scored frame: "
        f"it was run on --input {video} without ground truth")


def test_a_folder_mixed_by_an_earlier_version_is_named_as_such(runs, capsys, tmp_path):
    """Before --input runs had their own folder, one replaced the test-set run's per_frame.json
    (its header did not name the input) and left its metrics.json."""
    video, _ = runs
    mixed = json.loads((tmp_path / "results/tiny/walk/per_frame.json").read_text())
    del mixed["header"]["input"]
    (tmp_path / "results/tiny/per_frame.json").write_text(json.dumps(mixed))
    metrics = json.loads((tmp_path / "results/tiny/metrics.json").read_text())
    assert refusal(capsys, "results/tiny", "results/tiny") == (
        f"error: cannot compare results/tiny and results/tiny: results/tiny has no scored frame: it was run on "
        f"--input {video.resolve()} without ground truth; its metrics.json (J&F {metrics['score']:.4f} over 4 frames) "
        f"is of another run into the same folder, whose report data were replaced; run that one again to compare it")


def test_a_frame_set_that_leaves_no_annotated_frame_is_named(runs, capsys, tmp_path):
    _, base = runs
    root = write_mini_davis(tmp_path / "sparse", names=("bear",), num_frames=4)
    for number in (1, 2):  # 2 annotated frames left, the first and the last
        (root / f"Annotations_unsupervised/480p/bear/{number:05d}.png").unlink()
    assert main.main(base + [f"data.test_root={root}", "name=sparse", "inference.eval_frames=skip_first_last"]) == 0
    assert refusal(capsys, "results/sparse", "results/tiny") == (
        "error: cannot compare results/sparse and results/tiny: results/sparse has no scored frame: its 2 annotated "
        "frame(s) were all left out by the frame set skip_first_last")


@pytest.mark.parametrize("delta, text", [(5e-06, "+5e-06"), (-5e-06, "-5e-06"), (-4.96e-05, "-5e-05"),
                                         (1.234e-05, "+1.2e-05"), (0.0123456, "+0.0123"), (-0.03, "-0.0300"),
                                         (0.0, "0")])
def test_changes_are_signed_and_small_ones_keep_their_digits(delta, text):
    assert format_change(delta) == text


def test_no_change_reads_as_zero_or_with_the_wrong_sign():
    for magnitude in np.logspace(-12, 0, 241):
        for delta in (magnitude, -magnitude):
            shown = float(format_change(delta))
            assert shown != 0 and np.sign(shown) == np.sign(delta)
            assert abs(shown - delta) <= max(0.05 * abs(delta), 0.5e-4), (delta, format_change(delta))


def test_changes_are_drawn_on_a_symmetric_axis_scaled_to_them_with_a_line_at_zero():
    changes = [0.03, -0.01, 0.002]
    low, high = change_limits(changes)
    assert low == -high and 0.03 < high < 0.04  # +-0.03 fills the plot, not a sliver of 0-1
    assert change_limits([0.0, 0.0]) == change_limits([]) and change_limits([])[1] > 0
    axes = bar_figure(["a", "b", "c"], {"J&F B - A": changes}, "change", changes=True).axes[0]
    assert axes.get_xlim() == (low, high)
    assert [line.get_xdata()[0] for line in axes.lines] == [0.0]
    scores = bar_figure(["a"], {"J_mean": [0.7]}, "scores").axes[0]
    assert scores.get_xlim() == (0.0, 1.0) and [line.get_xdata()[0] for line in scores.lines] == [LOW_J]


def test_j_over_time_titles_and_axis_labels():
    assert low_frames_title("val_0024", 1) == "val_0024 \u00b7 1 frame with J < 0.5"
    assert low_frames_title("val_0024", 0) == "val_0024 \u00b7 0 frames with J < 0.5"
    series = {f"val_{n:04d}": ([0, 1, 2], [0.9, 0.4, 0.8]) for n in range(10)}  # 3 rows of 4, 2 in the last
    figure = time_figure(series)
    grid = np.array(figure.axes).reshape(3, 4)
    assert grid[0, 0].get_title() == "val_0000 \u00b7 1 frame with J < 0.5"
    assert [[axes.get_ylabel() for axes in row] for row in grid] == [["J", "", "", ""]] * 3
    lowest = {(2, 0), (2, 1), (1, 2), (1, 3)}  # each column's lowest plot
    assert {(r, c) for r in range(3) for c in range(4) if grid[r, c].get_xlabel() == "frame"} == lowest
    assert all(grid[r, c].get_xlabel() == "" for r in range(3) for c in range(4) if (r, c) not in lowest)
    assert figure._supylabel is None and figure._supxlabel is None  # no label beside the grid
