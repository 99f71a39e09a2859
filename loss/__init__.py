"""Segmentation losses, one table: `LOSSES[name](logits, masks) -> scalar`."""

from loss.segmentation import foreground_bce, two_class_cross_entropy

LOSSES = {"ce": two_class_cross_entropy, "bce_fg": foreground_bce}
