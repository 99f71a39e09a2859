"""The training crops of datasets/crops.py and datasets/transforms.py: the object-aware crop (default), the original's
bounds and the uniform crop."""

import numpy as np
import pytest
import torch
from torchvision import tv_tensors

from datasets.crops import ObjectCrop, crop_start_range
from datasets.transforms import build_train_transform


def moving_box_clip(height: int, width: int, boxes) -> tuple[tv_tensors.Video, tv_tensors.Mask]:
    """A clip with one box (top, bottom, left, right; inclusive) per frame; the image's first
    channel is 100 where the mask is set, so image and mask crops can be compared."""
    masks = torch.zeros(len(boxes), 1, height, width, dtype=torch.uint8)
    for frame, (top, bottom, left, right) in enumerate(boxes):
        masks[frame, 0, top:bottom + 1, left:right + 1] = frame + 1
    images = torch.cat([(masks != 0) * 100, torch.full_like(masks, 7), torch.full_like(masks, 9)], dim=1)
    return tv_tensors.Video(images.to(torch.uint8)), tv_tensors.Mask(masks)


# Portrait: the object low in a tall frame; wide: the object at the right of a wide frame. The
# union of the frames' boxes (portrait rows 100..150, wide columns 120..205) fits the 64x96 crop.
FRAMES = {"portrait": (160, 64, [(100, 120, 5, 30), (115, 135, 20, 45), (130, 150, 30, 60)]),
          "wide": (64, 224, [(10, 30, 120, 150), (20, 40, 150, 180), (30, 50, 175, 205)])}


@pytest.mark.parametrize("shape", FRAMES)
def test_object_crop_keeps_the_union_of_the_clips_masks_inside(shape):
    height, width, boxes = FRAMES[shape]
    video, masks = moving_box_clip(height, width, boxes)
    crop, uniform = ObjectCrop((64, 96)), build_train_transform("resize_short_edge_and_crop", [64, 96], "uniform")
    starts, uniform_kept = set(), []
    for seed in range(60):
        torch.manual_seed(seed)
        cropped_video, cropped_masks = crop(video, masks)
        assert cropped_masks.shape == (3, 1, 64, 96) and cropped_video.shape == (3, 3, 64, 96)
        for frame in range(3):  # every foreground pixel of every frame is kept
            assert (cropped_masks[frame] != 0).sum() == (masks[frame] != 0).sum()
        assert torch.equal(cropped_video[:, 0], (cropped_masks[:, 0] != 0) * 100)  # same crop for image and mask
        starts.add(tuple(cropped_masks.nonzero()[0].tolist()))
        torch.manual_seed(seed)
        uniform_kept.append(bool((uniform(video, masks)[1] != 0).sum() == (masks != 0).sum()))
    assert len(starts) > 10  # the crop still moves
    assert not all(uniform_kept)  # the uniform crop cuts the object off for some draws


def test_object_crop_start_ranges_by_hand():
    # Rows 30..50 in 100 rows, crop 40: start >= 50 - 40 + 1 so row 50 stays in, <= 30 so row 30 does.
    assert crop_start_range((30, 50), 100, 40, "object") == (11, 30)
    # An object taller than the crop (rows 5..60): the crop lies inside it, start 5..60 - 40 + 1.
    assert crop_start_range((5, 60), 100, 40, "object") == (5, 21)
    # A frame of 30 rows under a crop of 40: 10 rows of zeros above (start -10) up to below (start 0).
    assert crop_start_range((3, 20), 30, 40, "object") == (-10, 0)
    # No object: the top-left crop, as the original.
    assert crop_start_range(None, 100, 40, "object") == (0, 0)


def draws(crop: ObjectCrop, masks: tv_tensors.Mask, seeds: int = 500) -> np.ndarray:
    """(seeds, 2) crop starts (top, left) drawn with torch seeds 0..seeds-1."""
    starts = []
    for seed in range(seeds):
        torch.manual_seed(seed)
        params = crop.make_params([masks])
        starts.append((params["top"], params["left"]))
    return np.array(starts)


def test_original_bounds_are_the_originals_on_hand_made_masks():
    crop = ObjectCrop((40, 60), "original")
    # 100x200 frame, object rows 30..50, columns 40..90; the original's random_object_crop_tensors:
    #   top  in uniform(max(0, 50 - 40), min(max(0, 100 - 40), 30)) = uniform(10, 30), truncated: 10..29
    #   left in uniform(max(0, 90 - 60), min(max(0, 200 - 60), 90)) = uniform(30, 90): its obj_w_min
    #   is the maximum column 90, not 40, so left runs 30..89 and cuts off columns 40..left-1
    masks = tv_tensors.Mask(torch.zeros(1, 1, 100, 200, dtype=torch.uint8))
    masks[..., 30:51, 40:91] = 1
    starts = draws(crop, masks)
    assert (starts[:, 0].min(), starts[:, 0].max()) == (10, 29)
    assert (starts[:, 1].min(), starts[:, 1].max()) == (30, 89)
    fixed = draws(ObjectCrop((40, 60)), masks)  # left 90 - 60 + 1 = 31 .. 40
    assert (fixed[:, 1].min(), fixed[:, 1].max()) == (31, 40)
    # Object rows 5..60, taller than the crop: bounds max(0, 60 - 40) = 20 and min(60, 5) = 5, reversed;
    # Python's uniform(20, 5) draws between them: 20 + (5 - 20) * U in (5, 20], truncated: 5..19.
    masks = tv_tensors.Mask(torch.zeros(1, 1, 100, 200, dtype=torch.uint8))
    masks[..., 5:61, 100:110] = 1
    tops = draws(crop, masks)[:, 0]
    assert (tops.min(), tops.max()) == (5, 19)
    # An empty mask: every bound is 0, the top-left crop.
    empty = tv_tensors.Mask(torch.zeros(1, 1, 100, 200, dtype=torch.uint8))
    assert set(map(tuple, draws(crop, empty, seeds=20))) == {(0, 0)}
