"""Inference: the sliding-window engine (per-frame probabilities), its backends and background
threads, the runner over sequences (files, scores, progress) and the writers of masks,
probability maps and overlay videos."""

import logging

from inference_handlers.inference.engine import SaliencyEngine

__all__ = ["build_engine"]

logger = logging.getLogger(__name__)


def build_engine(cfg, model, device, live_network: bool = False):
    """The sliding-window engine around `model` (already on `device`), configured by inference.*;
    its performance settings apply to validation during training as well. The engine makes
    `model` ready for inference in place unless it is a `live_network`, one still trained
    (SaliencyEngine)."""
    if cfg.inference.precision == "fp16" and device.type != "cuda":
        logger.warning("inference.precision = fp16 needs a CUDA device; running fp32 on the %s "
                       "(bf16 is the CPU's fast precision)", device.type)
    return SaliencyEngine(model, cfg.inference, cfg.input, device, live_network)
