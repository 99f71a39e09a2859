"""`--task infer` (masks and metrics written under results/<name>/) and `--task eval` (metrics
only, no files): the same engine that validation uses during training."""

import logging

from datasets import index_sequences
from inference_handlers import build_engine
from inference_handlers.inference import run_inference
from inference_handlers.writers import write_json
from network import build_model
from network.weights import load_model_weights

logger = logging.getLogger(__name__)


def infer(cfg, run, weights_path: str, write_files: bool = True) -> dict:
    """Predict every test sequence with the weights in `weights_path`; return the summary."""
    model = build_model(cfg.model)
    load_model_weights(model, weights_path)
    model.to(run.device)
    sequences = index_sequences(cfg.data, "test")
    summary = run_inference(build_engine(cfg, model, run.device), sequences,
                            results_dir=run.results_dir if write_files else None,
                            mask_names=cfg.inference.mask_names)
    summary.update(config=cfg.name, checkpoint=str(weights_path))
    if write_files:
        write_json(run.results_dir / "metrics.json", summary)
    mean_j = "n/a (no ground truth)" if summary["mean_J"] is None else f"{summary['mean_J']:.4f}"
    logger.info("%d sequences, %d annotated frames: mean J %s%s", len(sequences), summary["num_frames"],
                mean_j, f"; masks and metrics.json in {run.results_dir}" if write_files else "")
    return summary
