"""The training checkpoint's save / restore pair (checkpoints/training.py): what `save` writes,
`restore` puts back, all of it, into other objects; a checkpoint of another model is refused."""

import random

import numpy as np
import pytest
import torch

from checkpoints.training import (Progress, TrainingCheckpointer, read_training_checkpoint, rng_states,
                                  save_checkpoint)
from network import build_model
from tasks.schedule import build_optimizer, build_scheduler
from utils.config import load_config, to_dict
from utils.errors import UserError

from support.paths import TINY_CONFIG


LAYOUT = ["format", "model", "optimizer", "scheduler", "scaler", "epoch", "iteration", "config", "training"]


def trained_objects(cfg, model_dir, seed: int, steps: int) -> TrainingCheckpointer:
    """A checkpointer over a tiny network (initialised from `seed`) and its optimiser, schedule and
    scaler after `steps` optimiser steps."""
    torch.manual_seed(seed)
    network = build_model(cfg.model)
    optimizer = build_optimizer(cfg.solver, network)
    scheduler = build_scheduler(cfg.solver, optimizer, iterations_per_epoch=3, epochs=2)
    for _ in range(steps):
        optimizer.zero_grad()
        network(torch.rand(2, 3, 8, 64, 64)).square().mean().backward()
        optimizer.step()
        scheduler.step()
    return TrainingCheckpointer(model_dir, network, optimizer, scheduler,
                                torch.amp.GradScaler("cpu", enabled=False), cfg)


def random_draws() -> tuple:
    return random.random(), float(np.random.rand()), float(torch.rand(()))


def test_restore_puts_back_everything_save_wrote(tmp_path):
    cfg = load_config(TINY_CONFIG)
    saved = trained_objects(cfg, tmp_path, seed=1, steps=2)
    progress = Progress(epoch=1, epoch_batches=2, iteration=5, best_score=0.5, best_epoch=1)
    rng = rng_states()
    expected_draws = random_draws()
    saved.save(progress, [rng], copies=["best.pth"])

    checkpoint = read_training_checkpoint(tmp_path / "last.pth")
    assert list(checkpoint) == LAYOUT and list(checkpoint["training"]) == ["progress", "rng"]
    assert (checkpoint["epoch"], checkpoint["iteration"], checkpoint["config"]) == (1, 5, to_dict(cfg))
    assert (tmp_path / "best.pth").read_bytes() == (tmp_path / "last.pth").read_bytes()

    restored = trained_objects(cfg, tmp_path, seed=2, steps=1)  # other weights, optimiser state and schedule
    assert restored.restore(checkpoint, tmp_path / "last.pth") == progress
    assert random_draws() == expected_draws
    for key, value in saved.network.state_dict().items():
        assert torch.equal(restored.network.state_dict()[key], value), key
    assert restored.scheduler.state_dict() == saved.scheduler.state_dict()
    restored_state, saved_state = restored.optimizer.state_dict(), saved.optimizer.state_dict()
    assert restored_state["param_groups"] == saved_state["param_groups"]
    for index, state in saved_state["state"].items():
        assert all(torch.equal(restored_state["state"][index][key], value) for key, value in state.items())


def test_restore_refuses_the_checkpoint_of_another_model_naming_the_differences(tmp_path):
    cfg = load_config(TINY_CONFIG)
    trained_objects(cfg, tmp_path, seed=1, steps=1).save(Progress(iteration=1), [rng_states()])
    wider = load_config(TINY_CONFIG, ["model.width=16"])
    with pytest.raises(UserError, match=r"cannot load .*last.pth into the model: \d+ with another shape"):
        trained_objects(wider, tmp_path, seed=1, steps=0).restore(
            read_training_checkpoint(tmp_path / "last.pth"), tmp_path / "last.pth")


def test_a_model_only_checkpoint_is_no_training_checkpoint(tmp_path):
    path = tmp_path / "converted.pth"
    save_checkpoint(path, model_state=build_model(load_config(TINY_CONFIG).model).state_dict(), epoch=0,
                    iteration=0, config=None)
    with pytest.raises(UserError, match="holds no training state .* to start over"):
        read_training_checkpoint(path)
