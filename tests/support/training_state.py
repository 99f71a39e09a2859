"""Two training checkpoints hold the same state: model, every optimiser state entry, schedule."""

import torch


ITERATIONS = 6  # the runs compared train 2 epochs of 3 batches


def assert_same_training_state(checkpoint, reference):
    assert checkpoint["iteration"] == reference["iteration"] == ITERATIONS
    assert checkpoint["training"]["progress"]["finished"]
    for key, value in reference["model"].items():
        assert torch.equal(checkpoint["model"][key], value), key
    assert_same_optimizer_state(checkpoint["optimizer"], reference["optimizer"])
    assert checkpoint["scheduler"] == reference["scheduler"]


def assert_same_optimizer_state(optimizer, reference):
    """Every entry of every parameter's state (Adam: exp_avg, exp_avg_sq, step) and the groups."""
    assert optimizer["param_groups"] == reference["param_groups"]
    assert optimizer["state"].keys() == reference["state"].keys()
    for index, state in reference["state"].items():
        assert optimizer["state"][index].keys() == state.keys(), index
        for key, value in state.items():
            assert torch.equal(optimizer["state"][index][key], value), (index, key)
