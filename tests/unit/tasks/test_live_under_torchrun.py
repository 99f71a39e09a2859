"""A live source is read by one process: under torchrun with several processes, `--task infer
--input <live source>` is one error before anything is loaded."""

import pytest

from tasks import infer
from utils.config import load_config
from utils.errors import UserError

from support.paths import TINY_CONFIG


class ModelLoaded(Exception):
    pass


def refuse_to_load(*args, **kwargs):
    raise ModelLoaded


@pytest.mark.parametrize("source", ["udp://127.0.0.1:5000", "-", "/dev/video0"])
def test_a_live_source_under_several_processes_is_refused_before_the_model_loads(monkeypatch, source):
    monkeypatch.setattr(infer, "load_model", refuse_to_load)
    monkeypatch.setattr(infer, "world_size", lambda: 2)
    with pytest.raises(UserError, match=r"a live source is read by one process; run it without torchrun \(this run has 2"):
        infer.infer(load_config(TINY_CONFIG), None, "weights.pth", input_path=source)
    monkeypatch.setattr(infer, "world_size", lambda: 1)
    with pytest.raises(ModelLoaded):
        infer.infer(load_config(TINY_CONFIG), None, "weights.pth", input_path=source)


def test_a_file_under_several_processes_is_not_refused(monkeypatch):
    monkeypatch.setattr(infer, "load_model", refuse_to_load)
    monkeypatch.setattr(infer, "world_size", lambda: 2)
    with pytest.raises(ModelLoaded):
        infer.infer(load_config(TINY_CONFIG), None, "weights.pth", input_path="video.mp4")
