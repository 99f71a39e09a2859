"""The object-aware training crop (the original's `random_object_crop_tensors`), a
torchvision.transforms.v2 transform of a whole clip; imported only by training, since torchvision
costs seconds to import."""

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F


def crop_start_range(span: tuple[int, int] | None, size: int, crop: int, bounds: str) -> tuple[int, int]:
    """(first, last) start of a crop of `crop` pixels along an axis of `size` pixels, for an object
    covering pixels span[0]..span[1] of that axis (None: no object), both ends allowed.

    object: the object stays inside the crop (inside means the crop lies inside an object larger
    than the crop); a start below 0 or past size - crop puts zeros where the frame is smaller than
    the crop, as v2.RandomCrop(pad_if_needed=True). No object: start 0, as the original.
    original: the original's bounds, max(0, high - crop) and min(max(0, size - crop), low); they
    may come reversed (Python's uniform draws between them), and the caller passes the column
    span as (xmax, xmax), the original's obj_w_min bug (SPEC 6.3, 11 defect 17).
    """
    low, high = span if span is not None else (0, 0)
    if bounds == "original":
        return max(0, high - crop), min(max(0, size - crop), low)
    if span is None:
        return 0, 0
    keeps_object = sorted((high - crop + 1, low))
    return max(min(0, size - crop), keeps_object[0]), min(max(0, size - crop), keeps_object[1])


class ObjectCrop(v2.Transform):
    """A crop of `size` (H, W) whose top-left is drawn so that the box around the non-zero pixels
    of the Mask input (all its frames: the union of a clip's masks) stays inside the crop.

    bounds object: a uniform integer start between the `crop_start_range` ends. original: the
    original's `random_object_crop_tensors` bounds and draw, int(first + (last - first) * U[0, 1)),
    which can cut the object's left part off; the original then stretched a frame smaller than the
    crop, here it is zero-padded (defect 17). Random numbers come from torch's generator, as in
    v2.RandomCrop.
    """

    def __init__(self, size, bounds: str = "object"):
        super().__init__()
        self.size = (int(size[0]), int(size[1]))
        self.bounds = bounds

    def make_params(self, flat_inputs: list) -> dict:
        mask = next(inpt for inpt in flat_inputs if isinstance(inpt, tv_tensors.Mask))
        height, width = mask.shape[-2:]
        foreground = mask.as_subclass(torch.Tensor).reshape(-1, height, width).ne(0).any(0)
        rows, columns = torch.nonzero(foreground.any(1)).flatten(), torch.nonzero(foreground.any(0)).flatten()
        row_span = (int(rows[0]), int(rows[-1])) if len(rows) else None
        column_span = (int(columns[0]), int(columns[-1])) if len(columns) else None
        if self.bounds == "original" and column_span is not None:
            column_span = (column_span[1], column_span[1])
        starts = [self.draw(*crop_start_range(span, size, crop, self.bounds))
                  for span, size, crop in ((row_span, height, self.size[0]), (column_span, width, self.size[1]))]
        return dict(top=starts[0], left=starts[1])

    def draw(self, first: int, last: int) -> int:
        if self.bounds == "original":
            return int(first + (last - first) * torch.rand((), dtype=torch.float64).item())
        return int(torch.randint(first, last + 1, ()))

    def transform(self, inpt, params: dict):
        return self._call_kernel(F.crop, inpt, top=params["top"], left=params["left"],
                                 height=self.size[0], width=self.size[1])
