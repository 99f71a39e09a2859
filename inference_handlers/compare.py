"""`python -m inference_handlers.compare --runs A B`: the comparison's command name, kept so that
scripts using it still work; it runs `python -m tools.compare` by name (a library package
imports no tool)."""

import runpy

if __name__ == "__main__":
    runpy.run_module("tools.compare", run_name="__main__", alter_sys=True)
