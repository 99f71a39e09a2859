"""The picture of a mask over its frame, as the overlay videos (inference.writers) and the
reports' thumbnails (report_figures) show it: the mask tinted red and outlined in yellow."""

import numpy as np
from scipy.ndimage import binary_dilation

from datasets.transforms import resize_labels
from inference_handlers.evaluation.metrics import disk, seg2bmap

OVERLAY_COLOR = np.array([255, 40, 40], dtype=np.float32)  # mask tint (RGB)
CONTOUR_COLOR = np.array([255, 255, 0], dtype=np.uint8)     # mask outline (RGB)
OVERLAY_ALPHA = 0.5                                         # weight of the tint inside the mask


def overlay_frame(image: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) frame with the mask tinted and outlined (outline ~ 1/200 of the diagonal)."""
    mask = resize_labels(np.asarray(labels, dtype=np.uint8), image.shape[:2]) != 0
    blended = image.astype(np.float32)
    blended[mask] = (1 - OVERLAY_ALPHA) * blended[mask] + OVERLAY_ALPHA * OVERLAY_COLOR
    result = blended.round().astype(np.uint8)
    thickness = max(1, round(np.hypot(*image.shape[:2]) / 400))
    result[binary_dilation(seg2bmap(mask), structure=disk(thickness))] = CONTOUR_COLOR
    return result
