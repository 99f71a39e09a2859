"""Orchestration: what `main.py` dispatches to.

    setup.py        run set-up shared by every task (logging, seed, device, folders)
    train.py        `--task train`: the training loop and validation
    infer.py        `--task infer` / `--task eval`: inference and metrics over the test set
    distributed.py  torchrun process groups and the collectives the loops use
    benchmark.py    `python -m tasks.benchmark`: speed and memory of a configuration
    download.py     `python -m tasks.download`: the original's published weights, fetched and checked

These modules use network/, checkpoints/, datasets/, loss/ and inference_handlers/; nothing below
imports them.
"""
