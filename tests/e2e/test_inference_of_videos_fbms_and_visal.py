"""Whole infer and eval runs of an untrained tiny model: `--input` a video (no data needed) gives the
Python Segmenter's masks, and `--task eval` scores FBMS and ViSal trees with their protocols."""

import numpy as np
import pytest

import main
from datasets.io import read_mask, read_rgb
from inference_handlers.segmenter import Segmenter

from support.data_trees import write_fbms_official, write_mini_davis, write_visal_flat
from support.paths import TINY_CONFIG
from support.videos import decode_all, write_video



@pytest.mark.slow
def test_input_video_needs_no_data_and_matches_the_python_segmenter(tmp_path, monkeypatch, tiny_weights):
    root = write_mini_davis(tmp_path / "DAVIS", names=("bear",))
    video = write_video(tmp_path / "walk.mp4", [read_rgb(p) for p in sorted(root.glob("JPEGImages/480p/bear/*.jpg"))])
    monkeypatch.chdir(tmp_path)
    args = ["-c", str(TINY_CONFIG), "--task", "infer", "--wts", str(tiny_weights), "--input", str(video),
            "data.test_root=nowhere", "model.backbone_weights=nowhere.pth", "inference.overlay=true"]
    assert main.main(args) == 0
    written = sorted((tmp_path / "results/tiny/walk/walk").glob("*.png"))  # the run folder results/tiny/walk
    assert [p.stem for p in written] == [f"{i:05d}" for i in range(10)]
    assert (tmp_path / "results/tiny/walk/overlays/walk.mp4").is_file()
    assert not (tmp_path / "results/tiny/walk/metrics.json").exists()  # nothing to score

    segmenter = Segmenter(tiny_weights)
    from_file = segmenter.segment(video)
    from_array = segmenter.segment(np.stack(decode_all(video)), probabilities=False)
    expected = np.stack([read_mask(p) for p in written])
    assert from_file.masks.shape == (10, 64, 112) and np.array_equal(from_file.masks, expected)
    assert np.array_equal(from_array.masks, expected) and from_array.probabilities is None
    assert from_file.probabilities.dtype == np.float32
    assert np.array_equal(from_file.probabilities > 0.5, expected == 1)
    assert from_file.frame_names[-1] == "00009"


@pytest.mark.slow
@pytest.mark.parametrize("dataset, writer, split, expected", [
    ("fbms", write_fbms_official, "Testset", ["protocol fbms", "overall: J "]),
    ("visal", write_visal_flat, "unused", ["protocol saliency", "maxF", "F_pooled_beta1"]),
])
def test_eval_scores_fbms_and_visal_with_their_protocols(tmp_path, monkeypatch, caplog, tiny_weights,
                                                         dataset, writer, split, expected):
    root = writer(tmp_path / dataset)
    monkeypatch.chdir(tmp_path)
    caplog.set_level("INFO")
    args = ["-c", str(TINY_CONFIG), "--task", "eval", "--wts", str(tiny_weights), f"data.test={dataset}",
            f"data.test_root={root}", f"data.test_split={split}"]
    assert main.main(args) == 0
    for text in expected + ["ground truth read:"]:
        assert text in caplog.text
    assert not (tmp_path / "results/tiny/metrics.json").exists()  # eval writes no files
