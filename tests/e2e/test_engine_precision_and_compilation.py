"""The engine's faster settings on real convolutions: bf16 masks of the tiny network against fp32,
channels-last weights keep the probabilities, and a failed torch.compile falls back to eager."""

import logging

import numpy as np
import pytest
import torch

from datasets.davis import index_davis
from network import build_model
from utils.config import load_config

from support.data_trees import write_mini_davis
from support.engines import make_engine
from support.paths import TINY_CONFIG


class TinyConvNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv3d(3, 2, 3, padding=1)

    def forward(self, clip):
        return self.conv(clip)


@pytest.mark.slow
def test_bf16_masks_of_a_real_tiny_network_agree_with_fp32(tmp_path):
    """The tiny 3DC-Seg (CSN depths 1,1,1,1, random weights) in bf16 autocast against fp32.

    Its classifier bias is moved so that the fp32 masks split the pixels half and half: the worst
    case, with many pixels near the decision boundary (from the random init every pixel is
    foreground and the masks would agree trivially). bf16 keeps 8 significant bits: a rounding
    moves a value by at most 2^-9 (0.2 %) of it, and the probabilities, of magnitude 1, move by
    less than that through the network's layers (3.5e-4 at most measured): threshold 2^-9. Only
    pixels whose fp32 probability is that close to 0.5 can change sides: 0.6 % of them measured,
    threshold 2 % (room for other CPUs' bf16 kernels, far below a broken bf16 path).
    """
    (sequence,) = index_davis(write_mini_davis(tmp_path, names=("bear",), num_frames=8, width=64), "2017/val.txt")
    torch.manual_seed(0)
    model = build_model(load_config(TINY_CONFIG).model).eval()
    first = list(make_engine("shift_back", model=model, clip_overlap=0).predict(sequence))
    with torch.no_grad():
        classifier = model.decoders[0].pred2
        classifier.bias[1] -= torch.stack([p.probabilities[1] for p in first]).logit().median()
    runs = {precision: list(make_engine("shift_back", model=model, clip_overlap=0, precision=precision)
                            .predict(sequence)) for precision in ("fp32", "bf16")}
    probabilities = {key: torch.stack([p.probabilities[1] for p in run]) for key, run in runs.items()}
    masks = {key: np.stack([p.labels() for p in run]) for key, run in runs.items()}
    assert 0.25 < masks["fp32"].mean() < 0.75                      # both classes present
    assert not torch.equal(probabilities["bf16"], probabilities["fp32"])  # bf16 did run
    assert (probabilities["bf16"] - probabilities["fp32"]).abs().max() <= 2 ** -9
    assert (masks["bf16"] == masks["fp32"]).mean() >= 0.98


@pytest.mark.slow
def test_channels_last_converts_weights_and_keeps_the_probabilities(mini_davis):
    (sequence, _) = index_davis(mini_davis, "2017/val.txt")
    plain = list(make_engine("shift_back", model=TinyConvNet()).predict(sequence))
    engine = make_engine("shift_back", model=TinyConvNet(), channels_last=True)
    assert engine.model.conv.weight.is_contiguous(memory_format=torch.channels_last_3d)
    for expected, prediction in zip(plain, engine.predict(sequence), strict=True):
        assert torch.allclose(prediction.probabilities, expected.probabilities, atol=1e-5)


@pytest.mark.slow
def test_failed_compilation_falls_back_to_eager_with_one_warning(mini_davis, caplog):
    (sequence, _) = index_davis(mini_davis, "2017/val.txt")
    engine = make_engine("shift_back", compile=True)
    calls = []

    def broken_compiled(clips):
        calls.append(clips.shape)
        raise RuntimeError("inductor: no working C++ compiler\nmore detail")

    engine.compiled = broken_compiled
    expected = list(make_engine("shift_back").predict(sequence))
    with caplog.at_level(logging.WARNING, logger="inference_handlers.inference.engine"):
        predictions = list(engine.predict(sequence))
    assert len(calls) == 1 and engine.compiled is None
    warnings = [r.getMessage() for r in caplog.records if "torch.compile failed" in r.getMessage()]
    assert warnings == ["inference.compile: torch.compile failed (RuntimeError: inductor: no working C++ "
                        "compiler); running the network eagerly"]
    for want, got in zip(expected, predictions, strict=True):
        assert torch.equal(want.probabilities, got.probabilities)
