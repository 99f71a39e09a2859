"""Tensorboard pictures of what the model learns: one training clip with its ground truth and
the model's prediction overlaid."""

import torch

GROUND_TRUTH_COLOUR = (0.0, 1.0, 0.0)  # green
PREDICTION_COLOUR = (1.0, 0.0, 0.0)    # red
OPACITY = 0.5


def overlay(frames: torch.Tensor, mask: torch.Tensor, colour) -> torch.Tensor:
    """(3, T, H, W) frames in [0, 1] with the (T, H, W) bool mask painted in `colour`."""
    paint = torch.tensor(colour, dtype=frames.dtype).view(3, 1, 1, 1)
    return torch.where(mask[None], (1 - OPACITY) * frames + OPACITY * paint, frames)


def clip_overlay(images: torch.Tensor, masks: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """One clip -> uint8 (3, 2H, T*W): its frames left to right, ground truth (green) on the top
    row, the prediction (red, argmax = foreground channel 1) on the bottom row.

    images (3, T, H, W) in [0, 1]; masks (1, T, H, W) label ids; logits (K, T, H, W).
    """
    frames = images.detach().float().cpu().clamp(0, 1)
    ground_truth = masks[0].detach().cpu() != 0                         # (T, H, W)
    prediction = logits.detach().float().cpu().argmax(dim=0) == 1       # (T, H, W)
    rows = [overlay(frames, ground_truth, GROUND_TRUTH_COLOUR), overlay(frames, prediction, PREDICTION_COLOUR)]
    rows = [torch.cat(row.unbind(dim=1), dim=2) for row in rows]      # (3, H, T*W) each
    return (torch.cat(rows, dim=1) * 255).round().to(torch.uint8)
