"""`--task train`: plain functions, no hook framework.

train() builds the network, optimiser, schedule and data (DistributedDataParallel under
torchrun), resumes from saved_models/<name>/last.pth when it exists, then for every epoch runs
train_one_epoch() and, every `train.validate_every` epochs, validate() with the engine that
`--task infer` uses, split across processes. Rank 0 alone logs, writes tensorboard and
checkpoints (their contents: checkpoints/training.py):

    last.pth         every epoch, every `train.checkpoint_every` iterations, and on SIGTERM/SIGINT
    best.pth         when the validation score (J&F where the protocol has it, else J) improves
    epoch_NNN.pth    every `train.snapshot_every` epochs (NNN = epochs done)
"""

import logging
import math
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from checkpoints.training import Progress, TrainingCheckpointer, rng_states, unfinished_epoch
from checkpoints.weights import load_backbone_weights, load_model
from datasets import build_train_dataset, index_sequences
from inference_handlers.evaluation.protocols import merge_summaries, protocol_for
from inference_handlers.inference import build_engine
from inference_handlers.inference.runner import run_inference
from loss import LOSSES
from loss.segmentation import clip_iou
from network import build_model
from tasks.clip_images import clip_overlay
from tasks.distributed import (barrier, broadcast_buffers, gather_objects, gather_rows, is_initialized,
                               is_main_process, parameters_digest, rank, shard, world_size)
from tasks.resume import ResumableSampler, StopSignals, read_resume_checkpoint, resume_path
from tasks.schedule import build_optimizer, build_scheduler
from utils.errors import UserError
from utils.precision import autocast_for, check_precision, uses_grad_scaler
from utils.registry import pick

logger = logging.getLogger(__name__)


@dataclass
class Training:
    """What a training step needs, and (made by `prepare`) what train() loops over."""
    model: torch.nn.Module       # what the step runs: the DDP wrapper under torchrun, else the network
    network: torch.nn.Module     # the network itself: state dicts, validation engine
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    loss_fn: object
    device: torch.device
    precision: str
    clip_grad_norm: float        # 0 = no clipping
    writer: object  # torch.utils.tensorboard.SummaryWriter on rank 0, else None
    model_dir: Path              # saved_models/<name>
    iterations_per_epoch: int    # optimiser steps in a whole epoch
    loader: DataLoader | None = None
    sampler: ResumableSampler | None = None  # the loader's sampler: epoch and start position
    dataset: object = None                   # the training set (set_epoch redraws its clips)
    engine: object = None                    # the validation engine (the one `--task infer` uses)
    test_sequences: list = field(default_factory=list)
    progress: Progress = field(default_factory=Progress)  # restored from last.pth on resume
    checkpointer: TrainingCheckpointer | None = None          # writes and restores all of the above


def build_network(cfg, device: torch.device, weights_path: str | None) -> torch.nn.Module:
    """The configured network on the device: a full checkpoint's weights (`--wts`, else
    train.init_weights) if given, else the backbone file if configured, else random."""
    model_config = replace(cfg.model, bn_mode="train") if cfg.model.bn_mode == "sync" else cfg.model
    key, weights_path = ("--wts", weights_path) if weights_path else ("train.init_weights", cfg.train.init_weights)
    if weights_path and not Path(weights_path).is_file():
        raise UserError(f"{key}: file not found: {weights_path} (for a recipe stage: train the previous stage first)")
    if weights_path:
        network, checkpoint = load_model(model_config, weights_path)
        warn_if_unfinished(key, weights_path, checkpoint.training)
        return network.to(device)
    network = build_model(model_config)
    if cfg.model.backbone_weights:
        load_backbone_weights(network.encoder, cfg.model.backbone_weights)
    elif cfg.model.bn_mode == "frozen":
        logger.warning("model.bn_mode = frozen without model.backbone_weights or initial weights: the "
                       "encoder's BatchNorm keeps its initial statistics (mean 0, variance 1) and is never "
                       "trained; use model.bn_mode=train to train from scratch")
    return network.to(device)


def warn_if_unfinished(key: str, path, training: dict | None) -> None:
    """A recipe stage should start from a finished previous stage: warn about a checkpoint of a
    run that has epochs left (`training`: the checkpoint's training state)."""
    epoch = unfinished_epoch(training)
    if epoch is not None:
        logger.warning("%s %s comes from an unfinished run (stopped in epoch %d): run its command again "
                       "to finish it first, unless starting from it is what you want", key, path, epoch)


def wrap_for_processes(network: torch.nn.Module, cfg, device: torch.device) -> torch.nn.Module:
    """DistributedDataParallel under torchrun (SyncBatchNorm first for bn_mode sync); the
    network itself in a single process."""
    if not is_initialized():
        if cfg.model.bn_mode == "sync":
            logger.info("model.bn_mode = sync in a single process: plain BatchNorm that trains")
        return network
    if cfg.model.bn_mode == "sync":
        if device.type != "cuda":
            raise UserError("model.bn_mode = sync needs CUDA (SyncBatchNorm); use model.bn_mode=train on CPU")
        network = torch.nn.SyncBatchNorm.convert_sync_batchnorm(network)
    return DistributedDataParallel(network, device_ids=[device.index] if device.type == "cuda" else None)


def leave_stop_signals_to_the_main_process(worker_id: int) -> None:
    """Each DataLoader worker gets a process group of its own, so SIGTERM and SIGINT sent to the
    job's group (`timeout`, Ctrl-C in a terminal, `kill -- -PGID`) reach the main process only: it
    stops after its step, writes last.pth and ends the workers (a worker killed by the signal ended
    training with a RuntimeError instead). The workers still end with the main process."""
    os.setpgrp()


def build_loader(cfg, dataset, sampler, device) -> DataLoader:
    loader = DataLoader(dataset, batch_size=cfg.train.batch_size, sampler=sampler, drop_last=True,
                        num_workers=cfg.loader.num_workers, pin_memory=device.type == "cuda",
                        worker_init_fn=leave_stop_signals_to_the_main_process)
    if len(loader) == 0:
        raise UserError(f"the training set has {len(dataset)} clips, fewer than {world_size()} "
                        f"process(es) x train.batch_size = {cfg.train.batch_size}")
    return loader


def gradients_are_finite(parameters) -> bool:
    """No gradient holds an inf or a NaN (their largest magnitude is finite: it cannot overflow)."""
    gradients = [parameter.grad for parameter in parameters if parameter.grad is not None]
    return not gradients or bool(torch.isfinite(torch.nn.utils.get_total_norm(gradients, norm_type="inf")))


def train_step(training: Training, batch: dict) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """One optimiser step; returns the loss and logits (detached) and whether the step was
    skipped: by fp16's GradScaler for overflowing gradients, or at fp32/bf16 for gradients that
    are not finite (e.g. a NaN from a backward kernel), so that the weights stay finite."""
    images = batch["images"].to(training.device, non_blocking=True)   # (N, 3, T, H, W)
    masks = batch["masks"].to(training.device, non_blocking=True)     # (N, 1, T, H, W)
    with autocast_for(training.device, training.precision):
        logits = training.model(images)                                # (N, 2, T, H, W)
        loss = training.loss_fn(logits, masks)
    training.optimizer.zero_grad(set_to_none=True)
    training.scaler.scale(loss).backward()
    if not training.scaler.is_enabled() and not gradients_are_finite(training.network.parameters()):
        training.optimizer.zero_grad(set_to_none=True)  # no update; the schedule moves on, as for fp16
        skipped = True
    else:
        if training.clip_grad_norm > 0:
            training.scaler.unscale_(training.optimizer)
            torch.nn.utils.clip_grad_norm_(training.network.parameters(), training.clip_grad_norm)
        scale = training.scaler.get_scale() if training.scaler.is_enabled() else 1.0
        training.scaler.step(training.optimizer)
        training.scaler.update()
        skipped = training.scaler.is_enabled() and training.scaler.get_scale() < scale
    training.scheduler.step()
    return loss.detach(), logits.detach(), skipped


def check_step(loss: float, skipped: bool, progress: Progress, cfg) -> None:
    """Stop a diverged run: a non-finite loss (fp32/bf16), or train.max_skipped_steps steps skipped
    in a row (fp16: gradients that overflowed the loss scale; fp32/bf16: gradients that were not
    finite although the loss was)."""
    precision = cfg.train.precision
    if not math.isfinite(loss) and (precision != "fp16" or not skipped):  # fp16: the GradScaler's to handle
        raise UserError(f"training diverged: the loss is {loss} at iteration {progress.iteration} "
                        f"(epoch {progress.epoch + 1}); a last.pth written before it is kept; "
                        f"try a lower solver.base_lr")
    if not skipped:
        progress.skipped_steps = 0
        return
    progress.skipped_steps += 1
    if precision == "fp16":
        reason, advice = "overflowing gradients", "train.precision=bf16 or a lower solver.base_lr"
        logger.info("iteration %d: fp16 step skipped, its gradients overflowed (%d in a row; the "
                    "GradScaler lowered the loss scale)", progress.iteration, progress.skipped_steps)
    else:
        reason, advice = "non-finite gradients", "a lower solver.base_lr" + (
            " or train.precision=fp32" if precision == "bf16" else "")
        logger.warning("iteration %d: %s step skipped, its gradients were not finite although the loss "
                       "was (%d in a row); the weights are unchanged", progress.iteration, precision,
                       progress.skipped_steps)
    if progress.skipped_steps >= cfg.train.max_skipped_steps:
        raise UserError(f"training diverged: {progress.skipped_steps} consecutive {precision} steps skipped for "
                        f"{reason}, up to iteration {progress.iteration} (epoch {progress.epoch + 1}); "
                        f"try {advice}")


def log_step(training: Training, cfg, rows: torch.Tensor, batch, logits, seconds_per_step: float) -> None:
    """Tensorboard scalars every step, a clip image every train.image_every steps, a log line
    every train.log_every steps (rank 0; rows = per-rank [loss, IoU, stop])."""
    if not is_main_process():
        return
    progress = training.progress
    loss, iou, lr = rows[:, 0].mean().item(), rows[:, 1].mean().item(), training.optimizer.param_groups[0]["lr"]
    step = progress.iteration
    training.writer.add_scalar("train/loss", loss, step)
    training.writer.add_scalar("train/iou", iou, step)
    training.writer.add_scalar("train/lr", lr, step)
    if cfg.train.image_every and step % cfg.train.image_every == 0:
        training.writer.add_image("train/clip", clip_overlay(batch["images"][0], batch["masks"][0], logits[0]), step)
    if step % cfg.train.log_every == 0:
        ranks = f" (per rank: {', '.join(f'{value:.6f}' for value in rows[:, 0].tolist())})" if len(rows) > 1 else ""
        logger.info("epoch %d/%d, iteration %d (%d/%d of the epoch): loss %.6f%s, IoU %.3f, lr %.2e, %.2f s/it",
                    progress.epoch + 1, cfg.train.epochs, step, progress.epoch_batches, training.iterations_per_epoch,
                    loss, ranks, iou, lr, seconds_per_step)


def train_one_epoch(training: Training, cfg, stop: StopSignals) -> tuple[bool, float]:
    """Train the rest of epoch `training.progress.epoch`; returns (stopped by a signal, mean loss).
    Writes last.pth every train.checkpoint_every iterations and when stopped."""
    progress = training.progress
    training.model.train()
    losses, last_time = [], time.time()
    for batch in tqdm(training.loader, desc=f"epoch {progress.epoch + 1}", unit="batch", leave=False,
                      disable=not is_main_process()):
        loss, logits, skipped = train_step(training, batch)
        progress.iteration, progress.epoch_batches = progress.iteration + 1, progress.epoch_batches + 1
        rows = gather_rows(torch.stack([loss.float(), clip_iou(logits, batch["masks"].to(logits.device)),
                                        torch.tensor(float(stop.received is not None), device=loss.device)]))
        mean_loss = rows[:, 0].mean().item()
        check_step(mean_loss, skipped, progress, cfg)
        losses.append(mean_loss)
        now = time.time()
        log_step(training, cfg, rows, batch, logits, now - last_time)
        last_time = now
        stopped = bool(rows[:, 2].max() > 0)
        every = cfg.train.checkpoint_every
        if stopped or (every and progress.iteration % every == 0
                       and progress.epoch_batches < training.iterations_per_epoch):
            save_training_state(training)
        if stopped:
            return True, float(np.mean(losses))
    return False, float(np.mean(losses)) if losses else float("nan")


def validate(engine, sequences, cfg, writer, epoch: int, stop: StopSignals) -> dict | None:
    """Every rank scores its share of the test sequences with the test set's protocol; returns
    the summary of all of them (its "score" is the protocol's headline, "score_name" its name:
    J&F for DAVIS); rank 0 writes val/<metric> scalars at step `epoch` (epochs done) and the
    validation pictures, whose label maps each rank captures from its own share. Every rank
    validates with rank 0's BatchNorm statistics, the ones its checkpoint keeps. None when a
    SIGTERM / SIGINT reached any rank: each stops after its current sequence."""
    from inference_handlers.evaluation.report import ValidationFrames  # matplotlib: imported where it is used
    broadcast_buffers(engine.model)
    logger.info("validating epoch %d on %d test sequences", epoch, len(sequences))
    protocol, summaries = protocol_for(cfg.inference.protocol, cfg.data.test), []
    pictures = ValidationFrames(sequences, cfg.train.val_images)  # captured by the rank that predicts them
    for sequence in shard(sequences):
        if stop.received is not None:
            break
        summaries.append(run_inference(engine, [sequence], cfg.inference, protocol=protocol,
                                       show_progress=False, frame_hook=pictures))
    gathered = gather_objects((summaries, stop.received is not None, pictures.labels))
    if any(stopped for _, stopped, _ in gathered):
        return None
    summary = merge_summaries([part for rank_summaries, _, _ in gathered for part in rank_summaries])
    if writer is not None:
        for key, value in summary["metrics"].items():
            writer.add_scalar(f"val/{key}", value, epoch)
        labels = {key: value for _, _, rank_labels in gathered for key, value in rank_labels.items()}
        log_validation_pictures(writer, pictures.frames, labels, summary, epoch)
    return summary


def log_validation_pictures(writer, frames, labels: dict, summary: dict, epoch: int) -> None:
    """Tensorboard: the per-sequence scores as a text table, and the fixed validation `frames`
    as frame | ground truth | prediction images (inference_handlers/evaluation/report.py)."""
    from inference_handlers.evaluation.report import markdown_table, validation_images
    writer.add_text("val/sequences", markdown_table(summary), epoch)
    for tag, image in validation_images(frames, labels):
        writer.add_image(tag, image, epoch, dataformats="HWC")


def save_training_state(training: Training, copies=()) -> None:
    """The checkpoint, with every rank's RNG state, written by rank 0 as the `copies` (best.pth,
    epoch_NNN.pth) and last.pth (checkpoints/training.py)."""
    rng_per_rank = gather_objects(rng_states())
    if is_main_process():
        training.checkpointer.save(training.progress, rng_per_rank, copies)
    barrier()


def end_epoch(training: Training, cfg, mean_loss: float, start_time: float, stop: StopSignals) -> bool:
    """Validation when due, best.pth and epoch_NNN.pth, last.pth. False when a signal stopped the
    validation: last.pth is then written with the epoch trained but not validated, so the run
    resumes with the validation."""
    progress = training.progress
    epochs_done = progress.epoch + 1
    message = f"epoch {epochs_done}/{cfg.train.epochs}: mean loss {mean_loss:.4f}"
    copies = []
    if training.test_sequences and (epochs_done % cfg.train.validate_every == 0 or epochs_done == cfg.train.epochs):
        summary = validate(training.engine, training.test_sequences, cfg, training.writer, epochs_done, stop)
        if summary is None:
            logger.warning("validation of epoch %d stopped by %s; it is done again on resume", epochs_done,
                           stop.received or "a signal to another process")
            save_training_state(training)
            return False
        if summary["score"] is not None:
            message += f", val {summary['score_name']} {summary['score']:.4f} ({summary['num_sequences']} sequences)"
            if progress.best_score is None or summary["score"] > progress.best_score:
                progress.best_score, progress.best_epoch = summary["score"], epochs_done
                copies.append("best.pth")
            message += f" (best {progress.best_score:.4f}, epoch {progress.best_epoch})"
    if cfg.train.snapshot_every and epochs_done % cfg.train.snapshot_every == 0:
        copies.append(f"epoch_{epochs_done:03d}.pth")
    logger.info("%s (%.0f s elapsed)", message, time.time() - start_time)
    progress.epoch_finished = True
    progress.finished = epochs_done == cfg.train.epochs
    save_training_state(training, copies)
    return True


def check_replicas(network: torch.nn.Module) -> None:
    """Under torchrun: log every rank's parameter digest; fail if the replicas differ."""
    if world_size() == 1:
        return
    digests = gather_objects(parameters_digest(network))
    if len(set(digests)) != 1:
        raise RuntimeError(f"the processes ended with different weights: sha256 per rank {digests}")
    logger.info("parameters identical on all %d processes (sha256 per rank: %s)", len(digests), ", ".join(digests))


def prepare(cfg, run, weights_path) -> Training:
    """Everything train() loops over, resumed from last.pth when there is one."""
    from torch.utils.tensorboard import SummaryWriter  # half a second to import: only where it is used
    check_precision(run.device, cfg.train.precision)
    resume_from = resume_path(cfg, run.model_dir, weights_path)
    network = build_network(cfg, run.device, None if resume_from else weights_path)
    dataset = build_train_dataset(cfg)
    sampler = ResumableSampler(dataset, seed=cfg.seed)
    loader = build_loader(cfg, dataset, sampler, run.device)
    optimizer = build_optimizer(cfg.solver, network)
    training = Training(
        model=wrap_for_processes(network, cfg, run.device), network=network, optimizer=optimizer,
        scheduler=build_scheduler(cfg.solver, optimizer, len(loader), cfg.train.epochs),
        scaler=torch.amp.GradScaler(run.device.type, enabled=uses_grad_scaler(run.device, cfg.train.precision)),
        loss_fn=pick(LOSSES, cfg.train.loss, "loss"), device=run.device, precision=cfg.train.precision,
        clip_grad_norm=cfg.solver.clip_grad_norm,
        writer=SummaryWriter(run.model_dir / "tensorboard") if is_main_process() else None,
        model_dir=run.model_dir, iterations_per_epoch=len(loader), loader=loader, sampler=sampler, dataset=dataset)
    training.checkpointer = TrainingCheckpointer(run.model_dir, network, optimizer, training.scheduler,
                                                 training.scaler, cfg)
    if resume_from:
        progress = training.progress = training.checkpointer.restore(
            read_resume_checkpoint(resume_from), resume_from, rank(), world_size())
        logger.info("resuming from %s: epoch %d, iteration %d (%d of %d batches of that epoch done%s)",
                    resume_from, progress.epoch + 1, progress.iteration, progress.epoch_batches, len(loader),
                    ", validated" if progress.epoch_finished else "")
    training.test_sequences = index_sequences(cfg.data, "test") if cfg.train.validate_every else []
    logger.info("%d training sequences, %d clips per epoch, %d iterations per epoch on %d process(es); "
                "%d test sequences; %.2fM parameters", len(dataset.sequences), len(dataset), len(loader),
                world_size(), len(training.test_sequences), sum(p.numel() for p in network.parameters()) / 1e6)
    training.engine = build_engine(cfg, network, run.device, live_network=True)  # weights stay as trained
    return training


def train(cfg, run, weights_path: str | None = None) -> dict:
    """Train as configured; returns {"epochs", "iterations", "loss" (mean of the last epoch),
    "already_finished" (the resumed run had no epoch left), "best_score", "best_epoch", "seconds",
    "stopped" (signal name or None)}."""
    start_time = time.time()
    training = prepare(cfg, run, weights_path)
    progress = training.progress
    first_epoch = progress.epoch + 1 if progress.epoch_finished else progress.epoch
    mean_loss, stopped = float("nan"), None
    with StopSignals() as stop:
        for epoch in range(first_epoch, cfg.train.epochs):
            if epoch != progress.epoch:
                progress.epoch, progress.epoch_batches, progress.epoch_finished = epoch, 0, False
            training.dataset.set_epoch(epoch)
            training.sampler.set_epoch(epoch)
            training.sampler.start_at(progress.epoch_batches * cfg.train.batch_size)
            was_stopped, mean_loss = train_one_epoch(training, cfg, stop)
            if was_stopped:
                stopped = stop.received or "SIGTERM"
                break
            validated = end_epoch(training, cfg, mean_loss, start_time, stop)
            signalled = torch.tensor([float(stop.received is not None)], device=run.device)
            if not validated or gather_rows(signalled).max() > 0:
                stopped = stop.received or "SIGTERM"
                break
    if stopped:
        logger.warning("stopped by %s at epoch %d, iteration %d; %s written: run the same command to resume",
                       stopped, progress.epoch + 1, progress.iteration, run.model_dir / "last.pth")
    else:
        check_replicas(training.network)
    if training.writer is not None:
        training.writer.close()
    return {"epochs": cfg.train.epochs, "iterations": progress.iteration, "loss": mean_loss,
            "already_finished": first_epoch >= cfg.train.epochs,
            "best_score": progress.best_score, "best_epoch": progress.best_epoch,
            "seconds": time.time() - start_time, "stopped": stopped}
