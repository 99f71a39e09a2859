"""Losses on (N, 2, T, H, W) logits against (N, 1, T, H, W) label-id masks (foreground = id != 0).

`ce` (default) is a genuine two-class cross-entropy: both output channels are trained, so the
softmax over them that inference uses is meaningful.
`bce_fg` is the original loss (SPEC 9): binary cross-entropy with logits on channel 1 only;
channel 0 never receives a gradient (SPEC 11, defect 6). Kept for reproducing the original.
"""

import torch
import torch.nn.functional as F


def foreground_target(masks: torch.Tensor) -> torch.Tensor:
    """(N, 1, T, H, W) label ids -> (N, T, H, W) long 0/1."""
    return (masks[:, 0] != 0).long()


def two_class_cross_entropy(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.float(), foreground_target(masks))


def foreground_bce(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits[:, 1].float(), foreground_target(masks).float())


def clip_iou(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Mean over frames of the per-frame IoU of argmax predictions (empty union counts as 1), as a
    0-d tensor on the logits' device (no host sync)."""
    prediction = logits.argmax(dim=1).bool().flatten(2)          # (N, T, H*W)
    target = foreground_target(masks).bool().flatten(2)
    intersection = (prediction & target).sum(-1).float()
    union = (prediction | target).sum(-1).float()
    iou = torch.where(union > 0, intersection / union.clamp(min=1), torch.ones_like(union))
    return iou.mean()
