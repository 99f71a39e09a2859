"""`main.py --task infer --input` with an untrained tiny model: it goes with --task infer only, and
an input run writes its own folder beside a test-set run (a video through main.py and the Python
Segmenter, eval on FBMS and ViSal: tests/e2e/test_inference_of_videos_fbms_and_visal.py)."""

import json
import re

import main
from datasets.io import read_rgb

from support.data_trees import write_mini_davis
from support.paths import TINY_CONFIG
from support.videos import write_video



def test_input_goes_with_task_infer_only(tmp_path, tiny_weights, capsys):
    status = main.main(["-c", str(TINY_CONFIG), "--task", "eval", "--wts", str(tiny_weights), "--input", "x.mp4"])
    assert status == 2 and "--input goes with --task infer" in capsys.readouterr().err


def report_headline(report_path) -> float:
    """The headline score a report shows (its exact value, data-value of the cell id="score")."""
    return float(re.search(r'id="score" data-value="([^"]+)"', report_path.read_text())[1])


def test_an_input_run_writes_its_own_folder_and_leaves_the_test_set_run_alone(tmp_path, monkeypatch, caplog,
                                                                              tiny_weights):
    """The issue's case: a test-set run, then --input with the same name replaced the test-set
    run's report.html, per_frame.json and config.yaml with the video's."""
    root = write_mini_davis(tmp_path / "DAVIS", names=("bear",), num_frames=6)
    video = write_video(tmp_path / "walk.mp4", [read_rgb(p) for p in sorted(root.glob("JPEGImages/480p/bear/*.jpg"))])
    monkeypatch.chdir(tmp_path)
    base = ["-c", str(TINY_CONFIG), "--task", "infer", "--wts", str(tiny_weights)]
    assert main.main(base + [f"data.test_root={root}"]) == 0
    results = tmp_path / "results/tiny"
    test_set_files = {name: (results / name).read_bytes() for name in
                      ("report.html", "per_frame.json", "config.yaml", "metrics.json", "metrics.csv")}
    caplog.set_level("INFO")
    assert main.main(base + ["--input", str(video), "data.test_root=nowhere"]) == 0

    assert {name: (results / name).read_bytes() for name in test_set_files} == test_set_files
    assert report_headline(results / "report.html") == json.loads(test_set_files["metrics.json"])["score"]
    assert f"test_root: {root}\n" in (results / "config.yaml").read_text()
    own = results / "walk"  # the --input run's folder: the same layout as a test-set run's
    assert sorted(p.stem for p in (own / "walk").glob("*.png")) == [f"{i:05d}" for i in range(6)]
    assert {"report.html", "per_frame.json", "config.yaml", "infer.log"} <= {p.name for p in own.iterdir()}
    assert not (own / "metrics.json").exists()
    assert "test_root: nowhere\n" in (own / "config.yaml").read_text()
    assert json.loads((own / "per_frame.json").read_text())["header"]["input"] == str(video)
    assert f"--input {video}: outputs go to results/tiny/walk/" in caplog.text


def test_an_input_named_like_a_folder_of_the_test_set_run_is_refused(tmp_path, monkeypatch, capsys, tiny_weights):
    root = write_mini_davis(tmp_path / "DAVIS", names=("bear",), num_frames=4)
    monkeypatch.chdir(tmp_path)
    base = ["-c", str(TINY_CONFIG), "--task", "infer", "--wts", str(tiny_weights)]
    assert main.main(base + [f"data.test_root={root}"]) == 0
    before = sorted(str(p) for p in (tmp_path / "results").rglob("*"))
    capsys.readouterr()
    assert main.main(base + ["--input", str(root / "JPEGImages/480p/bear")]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: --input {root}/JPEGImages/480p/bear: its outputs would go to results/tiny/bear, which holds the "
        f"masks of a sequence 'bear' (of the test set, or of an --input run of an earlier version, which may be "
        f"deleted) of results/tiny; "
        f"rename the input or choose another run name (name=...)")
    assert sorted(str(p) for p in (tmp_path / "results").rglob("*")) == before
