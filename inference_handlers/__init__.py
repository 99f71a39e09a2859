"""Inference: the engine (per-frame probabilities), writers (files), metrics and protocols
(scores, and `merge_summaries` for the summaries of several processes), the folder evaluator
(`python -m inference_handlers.evaluate`) and the Python entry point (`segmenter.Segmenter`)."""

from inference_handlers.engine import SaliencyEngine
from inference_handlers.protocols import merge_summaries, protocol_for
from utils.registry import pick

__all__ = ["ENGINES", "build_engine", "merge_summaries", "protocol_for"]

ENGINES = {"saliency": SaliencyEngine}


def build_engine(cfg, model, device):
    engine_class = pick(ENGINES, cfg.inference.engine, "inference engine")
    return engine_class(model, clip_length=cfg.input.clip_length,
                        clip_overlap=cfg.inference.clip_overlap, dense=cfg.inference.dense,
                        tail=cfg.inference.tail, resize_mode=cfg.input.test_resize,
                        resize_size=cfg.input.test_size, device=device,
                        precision=cfg.train.precision)
