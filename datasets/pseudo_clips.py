"""Pseudo-clips from single images (COCO): the original's cumulative random walk of warps (SPEC 7.3).

Frame 0 is the image; frame t + 1 is frame t warped once more, so the warps (and the occasional
blur) accumulate along the clip like camera and object motion. Each step applies, in random
order, an elastic warp (probability 0.05) and an affine warp (always), then blurs the image with
probability 0.05. Image and mask get the same warp through torchvision.transforms.v2.functional:
bilinear for the image, nearest for the mask; outside the frame the affine warp replicates the
image's edge and the mask is 0 (the original's imgaug settings); the elastic warp moves pixels by
a few pixels only and fills with 0. The affine scale is drawn for x and y independently, as the
original's imgaug `scale={"x": ..., "y": ...}` (SPEC 7.3), which over the clip's cumulative walk
changes the aspect strongly; `anisotropic=False` (data.coco.affine_scale: isotropic) draws one
factor for both. torchvision's F.affine takes one scale, so the warp is F.perspective with the
coefficients of the affine matrix (F.affine's conventions; the same pixels, to rounding, when the
scales are equal). Every random number comes from the numpy generator passed in, so a clip is
reproducible from its seed.
"""

import functools
import math

import numpy as np
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

SCALE_RANGE = (0.7, 1.3)  # affine scale factor
TRANSLATE_FRACTION = 0.1  # affine shift, at most this fraction of the width / height per axis
ROTATION_DEGREES = 15.0  # affine rotation in [-15, 15] degrees
SHEAR_DEGREES = 0.05  # affine x shear in [-0.05, 0.05] degrees (the original's imgaug value)
ELASTIC_PROBABILITY = 0.05
ELASTIC_ALPHA = (200.0, 220.0)  # displacement strength, pixels (imgaug's definition)
ELASTIC_SIGMA = (17.0, 19.0)  # smoothing of the displacement field, pixels
BLUR_PROBABILITY = 0.05
BLUR_SIGMA = (0.0, 0.5)  # Gaussian blur sigma, pixels


def with_edge_fill(image: torch.Tensor, margin: int, warp) -> torch.Tensor:
    """`warp` of `image` (C, H, W) with edge-replicated borders: pad by `margin` pixels on every
    side, warp about the same centre, crop back."""
    if margin <= 0:
        return warp(image)
    padded = torch.nn.functional.pad(image[None].float(), (margin,) * 4, mode="replicate")[0]
    warped = warp(padded.round().to(image.dtype))
    return warped[:, margin:-margin, margin:-margin]


def affine_coefficients(height: int, width: int, angle: float, translate: list[float],
                        scale: tuple[float, float], shear: float) -> list[float]:
    """F.perspective coefficients (output pixel -> input pixel) of the warp about the centre of a
    (height, width) frame: x shear by `shear` degrees, scale (x, y), rotation by `angle` degrees,
    then a shift of `translate` (x, y) pixels; the conventions of torchvision's F.affine."""
    rotation, slant = math.radians(angle), math.radians(shear)
    forward = (np.array([[math.cos(rotation), -math.sin(rotation)], [math.sin(rotation), math.cos(rotation)]])
               @ np.array([[1.0, -math.tan(slant)], [0.0, 1.0]]) @ np.diag(scale))
    inverse = np.linalg.inv(forward)
    centre = np.array([width / 2, height / 2])
    offset = centre - inverse @ (centre + np.array(translate))
    return [*inverse[0], offset[0], *inverse[1], offset[1], 0.0, 0.0]


def affine_step(image: torch.Tensor, mask: torch.Tensor, rng: np.random.Generator, anisotropic: bool = True):
    """One random affine warp of image uint8 (3, H, W) and mask uint8 (1, H, W); x and y scale
    drawn independently unless `anisotropic` is False."""
    height, width = image.shape[-2:]
    angle = float(rng.uniform(-ROTATION_DEGREES, ROTATION_DEGREES))
    translate = [float(rng.uniform(-TRANSLATE_FRACTION, TRANSLATE_FRACTION) * width),
                 float(rng.uniform(-TRANSLATE_FRACTION, TRANSLATE_FRACTION) * height)]
    scale_x = float(rng.uniform(*SCALE_RANGE))
    scale = (scale_x, float(rng.uniform(*SCALE_RANGE)) if anisotropic else scale_x)
    shear = float(rng.uniform(-SHEAR_DEGREES, SHEAR_DEGREES))

    def warp(x: torch.Tensor, interpolation: InterpolationMode, fill=None) -> torch.Tensor:
        coefficients = affine_coefficients(*x.shape[-2:], angle, translate, scale, shear)
        return F.perspective(x, None, None, interpolation=interpolation, fill=fill, coefficients=coefficients)

    # An output pixel samples at most (half diagonal + shift) / smaller scale from the centre.
    reach = (math.hypot(height, width) / 2 + math.hypot(*translate)) / (min(scale) * 0.99)
    margin = max(0, math.ceil(reach - min(height, width) / 2)) + 2
    image = with_edge_fill(image, margin, lambda x: warp(x, InterpolationMode.BILINEAR))
    mask = warp(mask, InterpolationMode.NEAREST, fill=[0.0])
    return image, mask


def elastic_step(image: torch.Tensor, mask: torch.Tensor, rng: np.random.Generator):
    """One random elastic warp: uniform noise in [-1, 1] per pixel and axis, Gaussian-smoothed,
    times alpha pixels (imgaug's definition; torchvision wants it in [-1, 1] grid units)."""
    height, width = image.shape[-2:]
    alpha, sigma = float(rng.uniform(*ELASTIC_ALPHA)), float(rng.uniform(*ELASTIC_SIGMA))
    margin = 4 * math.ceil(sigma)
    noise = torch.from_numpy(rng.uniform(-1, 1, (2, height + 2 * margin, width + 2 * margin))).float()
    kernel = 2 * math.ceil(3 * sigma) + 1
    field = F.gaussian_blur(noise, [kernel, kernel], [sigma, sigma])[:, margin:-margin, margin:-margin] * alpha
    displacement = torch.stack([field[0] * 2 / width, field[1] * 2 / height], dim=-1)[None]  # (1, H, W, 2)
    image = F.elastic(image, displacement, interpolation=InterpolationMode.BILINEAR)
    mask = F.elastic(mask, displacement, interpolation=InterpolationMode.NEAREST, fill=[0.0])
    return image, mask


def pseudo_clip(image: torch.Tensor, mask: torch.Tensor, clip_length: int,
                rng: np.random.Generator, anisotropic: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """image uint8 (3, H, W), mask uint8 (1, H, W) -> frames uint8 (T, 3, H, W), masks uint8
    (T, 1, H, W); frame 0 is the input; `anisotropic` as `affine_step`."""
    images, masks = [image], [mask]
    for _ in range(clip_length - 1):
        steps = [functools.partial(affine_step, anisotropic=anisotropic)]
        if rng.random() < ELASTIC_PROBABILITY:
            steps.insert(int(rng.integers(2)), elastic_step)
        for step in steps:
            image, mask = step(image, mask, rng)
        if rng.random() < BLUR_PROBABILITY:
            sigma = float(rng.uniform(*BLUR_SIGMA))
            if sigma > 0:
                image = F.gaussian_blur(image, [5, 5], [sigma, sigma])
        images.append(image)
        masks.append(mask)
    return torch.stack(images), torch.stack(masks)
