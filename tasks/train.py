"""`--task train`: plain functions, no hook framework.

train() builds data, model and optimiser, then for every epoch runs train_one_epoch(), writes
saved_models/<name>/last.pth and, every `train.validate_every` epochs, validate() with the same
engine that `--task infer` uses.
"""

import logging
import math
import time

import torch
from torch.utils.data import DataLoader
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from datasets import build_train_dataset, index_sequences
from inference_handlers import build_engine
from inference_handlers.inference import run_inference
from loss import LOSSES
from loss.segmentation import clip_iou
from network import build_model
from network.weights import load_backbone_weights, load_model_weights
from utils.checkpoint import save_checkpoint
from utils.config import to_dict
from utils.errors import UserError
from utils.registry import pick
from utils.precision import autocast_for

logger = logging.getLogger(__name__)


def learning_rate(solver, epoch: int) -> float:
    """base_lr * gamma ** (number of milestones m with epoch > m); milestone 10 = decay from
    epoch 11 on, the original's effective schedule (SPEC 8.2)."""
    return solver.base_lr * solver.lr_gamma ** sum(epoch > m for m in solver.lr_milestones)


def train_one_epoch(model, loader, optimizer, loss_fn, *, device, precision, scaler, writer,
                    epoch: int, iteration: int) -> tuple[int, float]:
    """One pass over the loader; returns the new iteration count and the mean loss."""
    model.train()
    total_loss, steps = 0.0, 0
    progress = tqdm(loader, desc=f"epoch {epoch}", unit="clip batch", leave=False)
    for batch in progress:
        images = batch["images"].to(device, non_blocking=True)   # (N, 3, T, H, W)
        masks = batch["masks"].to(device, non_blocking=True)     # (N, 1, T, H, W)
        with autocast_for(device, precision):
            logits = model(images)                               # (N, 2, T, H, W)
            loss = loss_fn(logits, masks)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        iteration += 1
        loss_value = loss.item()
        if not math.isfinite(loss_value) and not scaler.is_enabled():  # fp16's scaler skips such steps
            raise UserError(f"training diverged: the loss is {loss_value} at iteration {iteration} "
                            f"(epoch {epoch}); try a lower solver.base_lr")
        total_loss, steps = total_loss + loss_value, steps + 1
        iou = clip_iou(logits.detach(), masks)
        writer.add_scalar("train/loss", loss_value, iteration)
        writer.add_scalar("train/iou", iou, iteration)
        progress.set_postfix(loss=f"{loss_value:.4f}", iou=f"{iou:.3f}")
    return iteration, total_loss / max(steps, 1)


def validate(engine, sequences, writer, epoch: int) -> float | None:
    """Mean J of the engine's masks on the test sequences, logged to tensorboard."""
    summary = run_inference(engine, sequences, results_dir=None, show_progress=False)
    if summary["mean_J"] is not None:
        writer.add_scalar("val/J", summary["mean_J"], epoch)
    return summary["mean_J"]


def build_model_for_training(cfg, run, weights_path: str | None):
    """The configured model with backbone weights and/or a checkpoint's weights, on the device."""
    model = build_model(cfg.model)
    if cfg.model.backbone_weights:
        load_backbone_weights(model.encoder, cfg.model.backbone_weights)
    if weights_path:
        load_model_weights(model, weights_path)
    return model.to(run.device)


def build_loader(cfg, dataset, device) -> DataLoader:
    loader = DataLoader(dataset, batch_size=cfg.train.batch_size, shuffle=True, drop_last=True,
                        num_workers=cfg.loader.num_workers, pin_memory=device.type == "cuda",
                        generator=torch.Generator().manual_seed(cfg.seed))
    if len(loader) == 0:
        raise UserError(f"the training set has {len(dataset)} clips, "
                        f"fewer than train.batch_size = {cfg.train.batch_size}")
    return loader


def train(cfg, run, weights_path: str | None = None) -> dict:
    """Train as configured; returns {"epochs", "iterations", "loss", "val_J", "seconds"}."""
    start_time = time.time()
    model = build_model_for_training(cfg, run, weights_path)
    dataset = build_train_dataset(cfg)
    loader = build_loader(cfg, dataset, run.device)
    test_sequences = index_sequences(cfg.data, "test") if cfg.train.validate_every else []
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad],
                                 lr=cfg.solver.base_lr, weight_decay=cfg.solver.weight_decay)
    scaler = torch.amp.GradScaler("cuda", enabled=run.device.type == "cuda" and cfg.train.precision == "fp16")
    loss_fn = pick(LOSSES, cfg.train.loss, "loss")
    engine = build_engine(cfg, model, run.device)
    logger.info("%d training sequences, %d clips per epoch; %d test sequences; %.2fM parameters",
                len(dataset.sequences), len(dataset), len(test_sequences),
                sum(p.numel() for p in model.parameters()) / 1e6)
    writer = SummaryWriter(run.model_dir / "tensorboard")
    iteration, mean_loss, val_j = 0, float("nan"), None
    for epoch in range(cfg.train.epochs):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(cfg.solver, epoch)
        writer.add_scalar("train/lr", optimizer.param_groups[0]["lr"], epoch)
        dataset.set_epoch(epoch)
        iteration, mean_loss = train_one_epoch(
            model, loader, optimizer, loss_fn, device=run.device, precision=cfg.train.precision,
            scaler=scaler, writer=writer, epoch=epoch, iteration=iteration)
        message = f"epoch {epoch + 1}/{cfg.train.epochs}: mean loss {mean_loss:.4f}"
        if test_sequences and ((epoch + 1) % cfg.train.validate_every == 0 or epoch + 1 == cfg.train.epochs):
            val_j = validate(engine, test_sequences, writer, epoch)
            message += f", val J {val_j:.3f}" if val_j is not None else ""
        logger.info("%s (%.0f s elapsed)", message, time.time() - start_time)
        save_checkpoint(run.model_dir / "last.pth", model_state=model.state_dict(), epoch=epoch,
                        iteration=iteration, config=to_dict(cfg), optimizer_state=optimizer.state_dict(),
                        scaler_state=scaler.state_dict())
    writer.close()
    return {"epochs": cfg.train.epochs, "iterations": iteration, "loss": mean_loss, "val_J": val_j,
            "seconds": time.time() - start_time}
