"""Evaluation reports and the run comparison, opened in a real headless Chromium: the page loads
without script errors, every image is there, the screenshot is not blank, and the numbers shown
are those of metrics.json. (Checks of the reports that need no browser:
tests/unit/inference_handlers/test_report.py.)"""

import json
import shutil

import numpy as np
import pytest

from datasets.io import read_mask, write_palette_png
from datasets.sequence import Sequence
from inference_handlers.evaluation.compare import format_change
from tools.evaluate import main as evaluate_main
from inference_handlers.inference.runner import run_inference
from tools.compare import main as compare_main
from inference_handlers.evaluation.report import inference_frames, write_report
from utils.config import InferenceConfig

from support.browser import cell_values, fresh_profile, start_chromium, view
from support.data_trees import write_mini_davis
from support.engines import make_engine
from support.tiny_runs import infer


@pytest.fixture(scope="module")
def browser():
    driver = start_chromium(fresh_profile())
    yield driver
    driver.quit()


def check_page(driver, path):
    """Loads with no script error or failed load, every image decoded, screenshot not blank."""
    page = view(driver, path)
    assert page.errors == []
    assert page.images and all(width > 0 for _, width in page.images), page.images
    assert page.screenshot.std() > 10  # a blank page is one colour (std 0)
    return page


def assert_cells_equal(cells, values):
    """Each (data-value, text) cell holds exactly the value, and shows it with 4 decimals."""
    assert len(cells) == len(values)
    for (exact, text), value in zip(cells, values):
        assert float(exact) == value and text.strip() == f"{value:.4f}"


def assert_change_cell(cell, value):
    """A change B - A: the exact value, shown signed (compare.format_change)."""
    exact, text = cell
    assert float(exact) == value and text.strip() == format_change(value)


def test_infer_report_shows_the_numbers_of_metrics_json_and_every_picture(browser, inferred):
    results = inferred / "results/tiny"
    metrics = json.loads((results / "metrics.json").read_text())
    per_frame = json.loads((results / "per_frame.json").read_text())["sequences"]

    page = check_page(browser, results / "report.html")
    assert sum(alt == "thumbnail" for alt, _ in page.images) == 12  # the worst 12 of 20 scored frames
    _, overall = cell_values(browser, "overall")
    assert [row[0][1] for row in overall] == list(metrics["metrics"])
    assert_cells_equal([row[1] for row in overall], list(metrics["metrics"].values()))
    assert float(browser.find_element("id", "score").get_attribute("data-value")) == metrics["score"]
    headers, rows = cell_values(browser, "sequences")
    assert sorted(row[0][1] for row in rows) == sorted(metrics["sequences"])
    for row in rows:
        expected = metrics["sequences"][row[0][1]]
        assert_cells_equal(row[2:], [expected[column] for column in headers[2:]])
    for name, entry in per_frame.items():  # the per-frame J kept for the report averages to metrics.json's J_mean
        assert np.mean(entry["J"]) == pytest.approx(metrics["sequences"][name]["J_mean"])
        assert entry["scored"] == entry["frames"] and len(entry["image"]) == 10


def test_reports_render_without_scores_for_one_empty_sequence_and_for_input(tmp_path, monkeypatch, browser,
                                                                            tiny_weights):
    root = write_mini_davis(tmp_path / "DAVIS", names=("blank",))
    for mask in (root / "Annotations_unsupervised/480p/blank").glob("*.png"):  # no foreground anywhere
        write_palette_png(mask, np.zeros_like(read_mask(mask)))
    monkeypatch.chdir(tmp_path)
    infer(tiny_weights, root, "name=blank")
    metrics = json.loads((tmp_path / "results/blank/metrics.json").read_text())
    check_page(browser, tmp_path / "results/blank/report.html")
    headers, rows = cell_values(browser, "sequences")
    assert [row[0][1] for row in rows] == ["blank"]
    assert_cells_equal(rows[0][2:], [metrics["sequences"]["blank"][column] for column in headers[2:]])

    frames = root / "JPEGImages/480p/blank"
    infer(tiny_weights, root, "--input", str(frames), "name=no_report", "inference.report=false")
    assert not (tmp_path / "results/no_report/blank/report.html").exists()
    infer(tiny_weights, root, "--input", str(frames), "name=input")
    page = check_page(browser, tmp_path / "results/input/blank/report.html")
    assert not (tmp_path / "results/input/blank/metrics.json").exists()
    assert sum(alt == "thumbnail" for alt, _ in page.images) == 10  # masks at regular intervals: all 10 frames
    assert "not scored" in browser.find_element("id", "header").text

    # ground truth read, but no frame left to score: 2 annotated frames, first and last skipped
    paths = sorted(frames.glob("*.jpg"))
    sequence = Sequence("sparse", tuple(paths), {0: root / "Annotations_unsupervised/480p/blank/00000.png",
                                                 9: root / "Annotations_unsupervised/480p/blank/00009.png"})
    out = tmp_path / "results/sparse"
    summary = run_inference(make_engine("shift_back", clip_length=4, clip_overlap=1), [sequence],
                            InferenceConfig(eval_frames="skip_first_last"), results_dir=out, show_progress=False)
    assert summary["score"] is None
    write_report(out, {"source": "test"}, inference_frames([sequence], out, "frame_name", summary), summary)
    check_page(browser, out / "report.html")


def test_comparison_page_shows_the_changes_of_the_two_metrics_json(tmp_path, browser, inferred):
    root, run_a = inferred / "DAVIS", inferred / "results/tiny"
    improved = tmp_path / "improved"  # run B: run A's masks with bear's replaced by its ground truth
    shutil.copytree(run_a, improved, ignore=shutil.ignore_patterns("*.json", "*.html", "*.csv"))
    for mask in (root / "Annotations_unsupervised/480p/bear").glob("*.png"):
        shutil.copy(mask, improved / "bear" / mask.name)
    assert evaluate_main(["--pred", str(improved), "--gt", str(root), "--dataset", "davis",
                          "--split", "2017/val.txt", "--report"]) == 0
    assert compare_main(["--runs", str(run_a), str(improved), "--out", str(tmp_path / "cmp")]) == 0

    page = check_page(browser, tmp_path / "cmp/comparison.html")
    assert sum(alt == "thumbnail" for alt, _ in page.images) == 12
    a, b = (json.loads(path.read_text()) for path in (run_a / "metrics.json", improved / "metrics.json"))
    _, rows = cell_values(browser, "deltas-table")
    assert sorted(row[0][1] for row in rows) == ["bear", "cows"]
    for row in rows:
        before, after = ((m["sequences"][row[0][1]]["J_mean"] + m["sequences"][row[0][1]]["F_mean"]) / 2 for m in (a, b))
        assert_cells_equal(row[1:3], [before, after])
        assert_change_cell(row[3], after - before)
    _, headline = cell_values(browser, "headline")
    assert_cells_equal(headline[0][:2], [a["score"], b["score"]])
    assert_change_cell(headline[0][2], b["score"] - a["score"])
    assert "gained most: bear" in browser.find_element("tag name", "body").text
