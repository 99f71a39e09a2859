"""Optimiser and learning-rate schedule from a `SolverConfig`.

The schedule is a closed-form multiplier of `solver.base_lr` per iteration, applied by a
`LambdaLR` stepped after every optimiser step (its state, the iteration count, goes into the
checkpoint):

    step    base_lr * lr_gamma ** (milestones m with epoch > m), epoch = iteration // iterations
            per epoch: constant within an epoch, milestone 10 = decay from epoch 11 on, the
            original's effective schedule (SPEC 8.2)
    poly    base_lr * (1 - iteration / total) ** poly_power
    cosine  base_lr * (1 + cos(pi * iteration / total)) / 2

times a linear warm-up from `warmup_factor` to 1 over the first `warmup_iterations` iterations.
"""

import math

import torch

from utils.registry import pick


def step_factor(solver, iteration: int, iterations_per_epoch: int, total: int) -> float:
    epoch = iteration // iterations_per_epoch
    return solver.lr_gamma ** sum(epoch > milestone for milestone in solver.lr_milestones)


def poly_factor(solver, iteration: int, iterations_per_epoch: int, total: int) -> float:
    return max(0.0, 1.0 - iteration / max(total, 1)) ** solver.poly_power


def cosine_factor(solver, iteration: int, iterations_per_epoch: int, total: int) -> float:
    return 0.5 * (1.0 + math.cos(math.pi * min(iteration / max(total, 1), 1.0)))


LR_SCHEDULES = {"step": step_factor, "poly": poly_factor, "cosine": cosine_factor}


def lr_factor(solver, iteration: int, iterations_per_epoch: int, total: int) -> float:
    """Multiplier of base_lr for the optimiser step that follows `iteration` steps."""
    schedule = pick(LR_SCHEDULES, solver.lr_schedule, "learning-rate schedule")
    factor = schedule(solver, iteration, iterations_per_epoch, total)
    if iteration < solver.warmup_iterations:
        progress = iteration / solver.warmup_iterations
        factor *= solver.warmup_factor + (1.0 - solver.warmup_factor) * progress
    return factor


def learning_rate(solver, iteration: int, iterations_per_epoch: int, total: int) -> float:
    return solver.base_lr * lr_factor(solver, iteration, iterations_per_epoch, total)


def build_optimizer(solver, model: torch.nn.Module) -> torch.optim.Optimizer:
    """Adam over the trainable parameters (SPEC 8.1: default betas and eps)."""
    return torch.optim.Adam([p for p in model.parameters() if p.requires_grad],
                            lr=solver.base_lr, weight_decay=solver.weight_decay)


def build_scheduler(solver, optimizer, iterations_per_epoch: int, epochs: int):
    """LambdaLR over iterations; call `.step()` after every optimiser step."""
    total = iterations_per_epoch * epochs
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda iteration: lr_factor(solver, iteration, iterations_per_epoch, total))
