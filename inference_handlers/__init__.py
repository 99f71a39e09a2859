"""Inference: the engine (per-frame probabilities), writers (files), metrics and protocols
(scores, and `merge_summaries` for the summaries of several processes), the folder evaluator
(`python -m inference_handlers.evaluate`) and the Python entry point (`segmenter.Segmenter`)."""

import logging

from inference_handlers.engine import SaliencyEngine
from inference_handlers.protocols import merge_summaries, protocol_for

__all__ = ["build_engine", "merge_summaries", "protocol_for"]

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
