"""Fixtures registered in tests/conftest.py: the tiny model's untrained checkpoint and a run of it
on a mini DAVIS tree (the report tests); for the corpus tests (tests/unit/tasks/test_corpus.py,
tests/e2e/test_corpus_killed_and_under_torchrun.py) one intra-op thread, the clean corpus folder
and one uninterrupted run over it."""

import contextlib
from pathlib import Path

import pytest
import torch

import main

from support.corpus import infer_args, write_corpus
from support.data_trees import write_mini_davis
from support.tiny_runs import infer, save_untrained_checkpoint


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread, as the subprocesses run with OMP_NUM_THREADS=1 (another thread count
    changes the sums' rounding, and the masks compared byte for byte)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> Path:
    """An untrained checkpoint of the tiny model (tests/support/tiny.yaml), one per test module."""
    return save_untrained_checkpoint(tmp_path_factory.mktemp("weights") / "tiny.pth")


@pytest.fixture(scope="module")
def inferred(tmp_path_factory, tiny_weights):
    """A folder with a mini DAVIS tree (2 sequences of 10 frames) and results/tiny of the tiny model."""
    folder = tmp_path_factory.mktemp("run")
    root = write_mini_davis(folder / "DAVIS")
    with contextlib.chdir(folder):
        infer(tiny_weights, root)
    return folder


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("inputs") / "clips")


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory, tiny_weights, corpus, one_thread) -> Path:
    """results/tiny/clips of one uninterrupted run over the clean corpus folder (the reference)."""
    cwd = tmp_path_factory.mktemp("folder-run")
    with contextlib.chdir(cwd):
        assert main.main(infer_args(tiny_weights, str(corpus))) == 0
    return cwd / "results/tiny/clips"
