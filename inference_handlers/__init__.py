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
    return engine_class(model, clip_length=cfg.input.clip_length,
                        clip_overlap=cfg.inference.clip_overlap, dense=cfg.inference.dense,
                        tail=cfg.inference.tail, resize_mode=cfg.input.test_resize,
                        resize_size=cfg.input.test_size, device=device,
                        precision=cfg.inference.precision, batch_size=cfg.inference.batch_size,
                        prefetch_frames=cfg.inference.prefetch_frames,
                        channels_last=cfg.inference.channels_last, compile=cfg.inference.compile)
