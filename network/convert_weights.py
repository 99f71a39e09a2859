"""`python -m network.convert_weights IN OUT [--to ours|original]`: a former name of
`python -m tools.convert_weights`, which it runs by name (network/ imports nothing of tools/)."""

import runpy

if __name__ == "__main__":
    runpy.run_module("tools.convert_weights", run_name="__main__", alter_sys=True)
