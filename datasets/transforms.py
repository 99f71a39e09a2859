"""Resizing, cropping and padding of frames and masks.

Resizes use PIL, like the original's `scipy.misc.imresize` (bilinear for images, nearest for
masks, sizes rounded half-to-even). Training crops are torchvision.transforms.v2 transforms of the
whole clip at once, so every frame of a clip gets the same crop (the original drew one per frame).
The default crop is the original's object-aware one (`random_object_crop_tensors`), drawn from the
union of the clip's masks; see `datasets/crops.py`.
"""

import numpy as np
import torch
from PIL import Image

PAD_MULTIPLE = 32


def resized_shape(height: int, width: int, mode: str, size) -> tuple[int, int]:
    """Output (H, W) of a resize mode (SPEC 6.3)."""
    if mode == "unchanged":
        return height, width
    if mode == "fixed_size":
        return (size[0], size[0]) if len(size) == 1 else (size[0], size[1])
    factor = min(size) / min(height, width)
    return int(np.round(height * factor)), int(np.round(width * factor))


def resize_image(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """uint8 (H, W, 3) -> uint8 (h, w, 3), PIL bilinear."""
    if image.shape[:2] == tuple(shape):
        return image
    return np.array(Image.fromarray(image).resize((shape[1], shape[0]), Image.BILINEAR))


def resize_labels(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """uint8 (H, W) -> uint8 (h, w), PIL nearest."""
    if labels.shape[:2] == tuple(shape):
        return labels
    return np.array(Image.fromarray(labels).resize((shape[1], shape[0]), Image.NEAREST))


def padding_for(height: int, width: int, multiple: int = PAD_MULTIPLE):
    """((top, bottom), (left, right)) zero padding to a multiple; the odd pixel goes bottom/right."""
    pads = []
    for size in (height, width):
        total = (multiple - size % multiple) % multiple
        pads.append((total // 2, total - total // 2))
    return tuple(pads)


def pad_clip(clip: torch.Tensor, pad) -> torch.Tensor:
    """Zero-pad the last two dims of a tensor by ((top, bottom), (left, right))."""
    (top, bottom), (left, right) = pad
    return torch.nn.functional.pad(clip, (left, right, top, bottom))


def crop_padding(array, pad):
    """Undo `pad_clip` on the last two dims."""
    (top, bottom), (left, right) = pad
    height, width = array.shape[-2:]
    return array[..., top:height - bottom, left:width - right]


def build_train_transform(mode: str, size, crop: str = "object"):
    """Joint clip augmentation for training (one random draw per clip).

    resize_short_edge_and_crop: a crop of `size` after the short-edge resize, zero-padded where the
    frame is smaller (the original stretched such frames, defect 17). crop (input.train_crop):
    object / original: `ObjectCrop` with those bounds; uniform: v2.RandomCrop, blind to the masks.
    """
    if mode != "resize_short_edge_and_crop":
        return None
    from torchvision.transforms import v2  # torchvision costs seconds to import; inference does not use it

    from datasets.crops import ObjectCrop

    if crop == "uniform":
        return v2.RandomCrop((size[0], size[1]), pad_if_needed=True)
    return ObjectCrop(size, crop)


def prepare_training_clip(images: list[np.ndarray], masks: list[np.ndarray], mode: str, size,
                          crop) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames uint8 (H, W, 3) and masks uint8 (H, W) -> images float (3, T, H', W') in [0, 1]
    and masks uint8 (1, T, H', W'), resized, cropped and padded to a multiple of 32."""
    from torchvision import tv_tensors
    shape = resized_shape(*images[0].shape[:2], mode, size)
    video = np.stack([resize_image(image, shape) for image in images])     # (T, H, W, 3)
    labels = np.stack([resize_labels(mask, shape) for mask in masks])      # (T, H, W)
    video = tv_tensors.Video(torch.from_numpy(video).permute(0, 3, 1, 2))  # (T, 3, H, W)
    labels = tv_tensors.Mask(torch.from_numpy(labels)[:, None])            # (T, 1, H, W)
    if crop is not None:
        video, labels = crop(video, labels)
    pad = padding_for(*video.shape[-2:])
    images_out = pad_clip(video.as_subclass(torch.Tensor).float() / 255, pad).permute(1, 0, 2, 3)
    masks_out = pad_clip(labels.as_subclass(torch.Tensor), pad).permute(1, 0, 2, 3)
    return images_out.contiguous(), masks_out.contiguous()


def prepare_test_frame(image: np.ndarray, mode: str, size, out: torch.Tensor | None = None
                       ) -> tuple[torch.Tensor, tuple]:
    """uint8 (H, W, 3) -> float (3, H', W') in [0, 1], resized and zero-padded; and the pad.
    Written into `out` when it has the prepared frame's shape (see frame_tensor)."""
    frame = resize_image(image, resized_shape(*image.shape[:2], mode, size))
    pad = padding_for(*frame.shape[:2])
    return frame_tensor(torch.from_numpy(frame), pad, out), pad


def frame_tensor(frame: torch.Tensor, pad, out: torch.Tensor | None = None) -> torch.Tensor:
    """uint8 (H, W, 3) -> float (3, H + top + bottom, W + left + right) in [0, 1], zero-padded, on
    the frame's device: the values of `.float() / 255` then `pad_clip`, written in place, into
    `out` when it is a float tensor of that shape on that device (its old values are all
    overwritten: memory reused instead of allocated, which on a CPU costs page faults)."""
    (top, bottom), (left, right) = pad
    height, width = frame.shape[:2]
    shape = (3, height + top + bottom, width + left + right)
    if out is None or out.shape != shape or out.dtype != torch.float32 or out.device != frame.device:
        tensor = torch.zeros(shape, device=frame.device)
    else:
        tensor = out
        for strip in (tensor[:, :top], tensor[:, top + height:], tensor[:, :, :left], tensor[:, :, left + width:]):
            strip.zero_()
    tensor[:, top:top + height, left:left + width].copy_(frame.permute(2, 0, 1)).div_(255)
    return tensor
