"""Evaluation: per-frame measures (metrics), the protocols a test set is scored with, the folder
evaluator (evaluate), the HTML reports (report, report_figures) and the comparison of two runs
(compare). Nothing here imports the inference side (inference_handlers.inference)."""
