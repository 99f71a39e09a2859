"""Inference: the engine (per-frame probabilities), writers (files), metrics and protocols
(scores, and `merge_summaries` for the summaries of several processes), the folder evaluator
(`python -m inference_handlers.evaluate`) and the Python entry point (`segmenter.Segmenter`)."""

import logging

from inference_handlers.engine import SaliencyEngine
from inference_handlers.protocols import merge_summaries, protocol_for
from utils.registry import pick

__all__ = ["ENGINES", "build_engine", "merge_summaries", "protocol_for"]

logger = logging.getLogger(__name__)

ENGINES = {"saliency": SaliencyEngine}


def build_engine(cfg, model, device):
    """The configured engine around `model` (already on `device`); the inference.* performance
    settings apply to validation during training as well."""
    if cfg.inference.precision == "fp16" and device.type != "cuda":
        logger.warning("inference.precision = fp16 needs a CUDA device; running fp32 on the %s "
                       "(bf16 is the CPU's fast precision)", device.type)
    engine_class = pick(ENGINES, cfg.inference.engine, "inference engine")
    return engine_class(model, cfg.inference, cfg.input, device)
