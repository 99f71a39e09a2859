"""Inference engines on the CPU: around a model whose logits are easy to predict by hand
(PositionModel, make_engine), or around the tiny network (tiny_model, engine, probabilities); and
the threads the inference pipeline starts that are still alive."""

import threading

import torch

from inference_handlers.inference.engine import SaliencyEngine
from network import build_model
from utils.config import InferenceConfig, InputConfig, load_config

from support.paths import TINY_CONFIG

CPU = torch.device("cpu")


class PositionModel(torch.nn.Module):
    """Foreground logit = image brightness + position of the frame within the clip, so that a
    frame's average depends on which windows (and how many copies) covered it."""

    def forward(self, clip):
        brightness = clip.mean(dim=1)                                       # (N, T, H, W)
        position = torch.arange(clip.shape[2], dtype=clip.dtype).view(1, -1, 1, 1)
        foreground = brightness - 0.5 + 0.05 * position
        return torch.stack([torch.zeros_like(foreground), foreground], dim=1)  # (N, 2, T, H, W)


def make_engine(tail, dense=False, clip_length=8, clip_overlap=3, model=None, prefetch_frames=0, **inference):
    """An engine on the CPU at the frames' own size; `inference`: other InferenceConfig fields."""
    settings = InferenceConfig(clip_overlap=clip_overlap, dense=dense, tail=tail, prefetch_frames=prefetch_frames,
                               **inference)
    return SaliencyEngine(model or PositionModel(), settings,
                          InputConfig(clip_length=clip_length, test_resize="unchanged", test_size=[64]),
                          torch.device("cpu"))


AGREEMENT = 0.99  # masks of a faster setting against fp32 eager, as docs/performance.md asks


def agreement(first: torch.Tensor, second: torch.Tensor) -> float:
    return float((first.argmax(dim=1) == second.argmax(dim=1)).float().mean())


def tiny_model(seed: int = 0):
    torch.manual_seed(seed)
    return build_model(load_config(TINY_CONFIG).model).eval()


def engine(model, **inference) -> SaliencyEngine:
    return SaliencyEngine(model, InferenceConfig(prefetch_frames=0, **inference),
                          InputConfig(clip_length=8, test_resize="unchanged", test_size=[64]), CPU)


def probabilities(engine, sequence) -> torch.Tensor:
    return torch.stack([prediction.probabilities for prediction in engine.predict(sequence)])


def background_threads():
    return [t for t in threading.enumerate()
            if (t.name in ("frame-reader", "result-writer") or t.name.startswith("host-worker")) and t.is_alive()]
