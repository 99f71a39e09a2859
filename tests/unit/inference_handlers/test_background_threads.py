"""The inference pipeline's threads (inference_handlers/inference/background.py): the frame reader and the
background writer stay bounded, stop, and hand every error to the calling thread as the original
exception (that they give the same files as the plain synchronous engine:
tests/e2e/test_threaded_inference_writes_the_synchronous_files.py)."""

import threading
import time

import pytest

from datasets.davis import index_davis
from datasets.io import DataFileError
from inference_handlers.inference import runner as inference
from inference_handlers.inference.background import consume_in_background, prefetch
from inference_handlers.inference.runner import COMPLETE_MARKER, run_inference
from utils.config import InferenceConfig

from support.data_trees import write_mini_davis
from support.engines import background_threads, make_engine


@pytest.fixture
def two_sequences(tmp_path):
    return index_davis(write_mini_davis(tmp_path / "DAVIS", num_frames=13), "2017/val.txt")


def test_writer_error_reaches_the_caller_as_the_original_exception(tmp_path, two_sequences, monkeypatch):
    failure = OSError(28, "No space left on device")
    original = inference.write_mask

    def write_mask(results_dir, sequence_name, frame_name, labels):  # called by several threads
        if frame_name == "00005":
            raise failure
        return original(results_dir, sequence_name, frame_name, labels)

    monkeypatch.setattr(inference, "write_mask", write_mask)
    engine = make_engine("shift_back", clip_length=4, clip_overlap=1, prefetch_frames=2)
    with pytest.raises(OSError) as raised:
        run_inference(engine, two_sequences, InferenceConfig(write_queue=2), results_dir=tmp_path, show_progress=False)
    assert raised.value is failure
    assert not (tmp_path / two_sequences[0].name / COMPLETE_MARKER).exists()
    assert not background_threads()  # the reader stopped too


def test_reader_error_reaches_the_caller_and_stops_the_writer(tmp_path, two_sequences):
    two_sequences[0].frame_paths[6].write_bytes(b"not a jpeg")
    engine = make_engine("shift_back", clip_length=4, clip_overlap=1, prefetch_frames=2)
    with pytest.raises(DataFileError, match="00006.jpg"):
        run_inference(engine, two_sequences, InferenceConfig(overlay=True, write_queue=2), results_dir=tmp_path,
                      show_progress=False)
    assert not background_threads()
    assert not (tmp_path / "overlays").exists() or not any((tmp_path / "overlays").glob("*.mp4"))
    assert not (tmp_path / two_sequences[0].name / COMPLETE_MARKER).exists()


def test_prefetch_runs_ahead_in_another_thread_by_at_most_depth():
    produced, threads = [], set()

    def items():
        for index in range(30):
            threads.add(threading.current_thread().name)
            produced.append(index)
            yield index

    for consumed, item in enumerate(prefetch(items(), depth=3, name="frame-reader"), start=1):
        time.sleep(0.002)
        assert len(produced) - consumed <= 3 + 1  # queue + the item waiting to be put
        assert item == consumed - 1
    assert threads == {"frame-reader"}


def test_closing_prefetch_stops_its_thread_and_closes_the_source_there():
    closed_in = []

    def items():
        try:
            yield from range(1000)
        finally:
            closed_in.append(threading.current_thread().name)

    iterator = prefetch(items(), depth=2, name="frame-reader")
    assert [next(iterator) for _ in range(3)] == [0, 1, 2]
    iterator.close()
    assert closed_in == ["frame-reader"] and not background_threads()


def test_consume_in_background_returns_after_consuming_everything_in_order():
    seen = []

    def consume(items):
        for item in items:
            time.sleep(0.001)
            seen.append((item, threading.current_thread().name))
        return len(seen)

    assert consume_in_background(consume, range(20), depth=2, name="result-writer") == 20
    assert seen == [(i, "result-writer") for i in range(20)]


def test_a_failing_producer_aborts_the_background_consumer():
    failure, finished = ValueError("frame 3 is broken"), []

    def produce():
        yield from range(3)
        raise failure

    def consume(items):
        try:
            for _ in items:
                pass
            finished.append("completed")
        except BaseException as error:
            finished.append(type(error).__name__)
            raise

    with pytest.raises(ValueError) as raised:
        consume_in_background(consume, produce(), depth=2)
    assert raised.value is failure and finished == ["_Aborted"]
