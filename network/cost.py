"""What a network costs: parameters, and FLOPs for one clip counted without computing anything.

FLOPs are counted by `torch.utils.flop_counter.FlopCounterMode` on the meta device, so a full-size
network on a 480p window costs a fraction of a second on any machine. The counter covers
convolutions (transposed and grouped included) and matrix products, with a multiply-add counted
as 2 FLOPs; normalisation, activations, pooling and resizes are left out (a few percent).
"""

import torch
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(model: torch.nn.Module) -> int:
    """Learnable and frozen parameters, each tensor once."""
    return sum(parameter.numel() for parameter in model.parameters())


def count_flops(build, clip_shape) -> int:
    """FLOPs of one forward pass of the model `build()` returns, on a clip of `clip_shape`
    (N, 3, T, H, W). `build` is called under the meta device, so no weights are allocated."""
    with torch.device("meta"):
        model = build().eval()
        clip = torch.empty(clip_shape)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(clip)
    return counter.get_total_flops()
