"""The infer report and the run comparison without a browser: the report names the versions found
once at set-up, and the comparison refuses runs of another protocol or ground truth (the pages in a
headless Chromium: tests/e2e/test_report_in_browser.py)."""

import shutil

import tasks.setup
from tools.evaluate import main as evaluate_main
from tools.compare import main as compare_main

from support.data_trees import write_mini_davis
from support.tiny_runs import infer


def test_the_report_names_the_versions_found_at_set_up(tmp_path, monkeypatch, tiny_weights):
    calls = []

    def environment_versions():
        calls.append(1)
        return "Python 3, torch 2; code: the versions found at set-up"

    monkeypatch.setattr(tasks.setup, "environment_versions", environment_versions)
    root = write_mini_davis(tmp_path / "DAVIS", names=("bear",), num_frames=4)
    monkeypatch.chdir(tmp_path)
    infer(tiny_weights, root)
    assert len(calls) == 1  # found once, for the log and the report
    assert "code: the versions found at set-up" in (tmp_path / "results/tiny/report.html").read_text()


def test_comparison_refuses_runs_of_other_protocols_or_ground_truth(tmp_path, capsys, inferred):
    root, pred = inferred / "DAVIS", str(inferred / "results/tiny")
    other_truth = tmp_path / "copy_of_truth"
    shutil.copytree(root / "Annotations_unsupervised/480p", other_truth)
    for name, args in (("saliency", ["--gt", str(root / "Annotations_unsupervised/480p"), "--protocol", "saliency"]),
                       ("copy", ["--gt", str(other_truth)])):
        assert evaluate_main(["--pred", pred, *args, "--report", "--out", str(tmp_path / name)]) == 0
    capsys.readouterr()
    assert compare_main(["--runs", pred, str(tmp_path / "saliency")]) == 2
    assert "different protocol (davis2016 vs saliency)" in capsys.readouterr().err
    assert compare_main(["--runs", pred, str(tmp_path / "copy")]) == 2
    assert "different ground truth (20 frames" in capsys.readouterr().err
