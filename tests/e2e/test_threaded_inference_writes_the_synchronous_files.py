"""Frames read ahead, several windows per forward and a background writer give the same files as
the plain synchronous engine (masks and markers byte for byte, probability maps within one grey
level), and no thread of the pipeline outlives the run."""

import io

import numpy as np
import pytest
from PIL import Image

from datasets.davis import index_davis
from inference_handlers.inference.runner import run_inference
from utils.config import InferenceConfig

from support.data_trees import write_mini_davis
from support.engines import background_threads, make_engine, tiny_model


def files_of(folder):
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture
def two_sequences(tmp_path):
    return index_davis(write_mini_davis(tmp_path / "DAVIS", num_frames=13), "2017/val.txt")


@pytest.mark.slow
def test_batched_prefetched_background_written_files_equal_the_synchronous_ones(tmp_path, two_sequences):
    network = tiny_model()
    options = dict(show_progress=False, protocol="davis2016")
    plain = run_inference(make_engine("repeat_first", model=network, clip_length=4, clip_overlap=1),
                          two_sequences, InferenceConfig(save_probs=True, write_queue=0),
                          results_dir=tmp_path / "plain", **options)
    fast = run_inference(make_engine("repeat_first", model=network, clip_length=4, clip_overlap=1,
                                     batch_size=3, prefetch_frames=4),
                         two_sequences, InferenceConfig(save_probs=True, write_queue=2),
                         results_dir=tmp_path / "fast", **options)
    assert not background_threads()
    expected = files_of(tmp_path / "plain")
    assert len(expected) == 2 * (2 * 13 + 1)  # masks, probability PNGs, markers: all written on return
    written = files_of(tmp_path / "fast")
    assert written.keys() == expected.keys()
    masks_and_markers = [name for name in expected if not name.startswith("probs/")]
    assert all(written[name] == expected[name] for name in masks_and_markers)
    for name in expected.keys() - set(masks_and_markers):  # a batched convolution rounds differently (~1e-6)
        levels = [np.asarray(Image.open(io.BytesIO(files[name])), dtype=int) for files in (written, expected)]
        assert np.abs(levels[0] - levels[1]).max() <= 1, name
    assert fast == plain
