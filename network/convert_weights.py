"""`python -m network.convert_weights IN OUT [--to ours|original]`: the former name of
`python -m checkpoints.convert`, which it runs by name (network/ imports nothing of checkpoints/)."""

import runpy

if __name__ == "__main__":
    runpy.run_module("checkpoints.convert", run_name="__main__")
