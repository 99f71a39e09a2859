"""`python -m inference_handlers.evaluate --pred DIR --gt GT ...`: the folder evaluator's command
name, kept so that scripts using it still work; it runs `python -m tools.evaluate` by name (a
library package imports no tool)."""

import runpy

if __name__ == "__main__":
    runpy.run_module("tools.evaluate", run_name="__main__", alter_sys=True)
