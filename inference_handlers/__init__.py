"""Inference and its evaluation, in two sub-packages:

- `inference_handlers.inference`: the engine (per-frame probabilities) and everything that makes
  and writes masks (`build_engine`, `runner.run_inference`, the writers);
- `inference_handlers.evaluation`: metrics and protocols (scores, and `merge_summaries` for the
  summaries of several processes), the folder evaluator, the HTML reports and the comparison of
  two runs. It imports nothing of the inference side.

`segmenter.Segmenter` is the Python entry point (segment videos from notebooks or other code).
"""
