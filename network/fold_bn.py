"""BatchNorm folded into the convolution before it, for inference.

At inference a BatchNorm layer is a fixed affine map per channel, y = s * (x - mean) + beta with
s = gamma / sqrt(var + eps) from its running statistics. When its input is the output of one
convolution and nothing else reads that output, the map can move into the convolution:
W' = s * W (per output channel) and b' = s * (b - mean) + beta. The BatchNorm becomes an
`nn.Identity`, and the network makes one pass less over each of those activations; the result
is the same up to rounding (computed in float64, stored in the convolution's dtype).

Which pairs qualify is read off the structure, never guessed from module order alone:
- in an `nn.Sequential` (and its subclasses, e.g. torchvision's `Conv2Plus1D`), a convolution
  directly followed by a BatchNorm (nothing between, so no nonlinearity);
- in a module with a `conv_norm_pairs()` method, the (convolution, BatchNorm) attribute names it
  lists: those whose forward applies the BatchNorm to the convolution's output and to nothing
  else (the encoder's stem and residual blocks, network/resnet3d.py).
GroupNorm, BatchNorm without running statistics, BatchNorm after anything else and transposed
convolutions are left alone.
"""

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd


def foldable(conv: nn.Module, norm: nn.Module) -> bool:
    """A plain (not transposed) convolution and a BatchNorm with running statistics, of as many
    channels as the convolution has outputs."""
    return (isinstance(conv, _ConvNd) and not conv.transposed and isinstance(norm, _BatchNorm)
            and norm.track_running_stats and norm.running_mean is not None
            and norm.num_features == conv.out_channels)


@torch.no_grad()
def fold_into(conv: _ConvNd, norm: _BatchNorm) -> None:
    """Give `conv` the eval-mode BatchNorm `norm` applied to its output (weights in place)."""
    variance = norm.running_var.double()
    scale = torch.rsqrt(variance + norm.eps)
    shift = -norm.running_mean.double() * scale
    if norm.affine:
        scale, shift = scale * norm.weight.double(), shift * norm.weight.double() + norm.bias.double()
    weight = conv.weight
    conv.weight.copy_((weight.double() * scale.view(-1, *[1] * (weight.dim() - 1))).to(weight.dtype))
    bias = shift if conv.bias is None else conv.bias.double() * scale + shift
    if conv.bias is None:
        conv.bias = nn.Parameter(bias.to(device=weight.device, dtype=weight.dtype),
                                 requires_grad=weight.requires_grad)
    else:
        conv.bias.copy_(bias.to(conv.bias.dtype))


def fold_batchnorm(model: nn.Module) -> int:
    """Fold every qualifying BatchNorm of `model` into its convolution, in place, and replace it
    by `nn.Identity`; the model is put in eval mode, and from then on computes only the eval-mode
    network (never fold a network that is still trained). Returns how many were folded."""
    model.eval()
    folded = 0
    for module in list(model.modules()):
        if isinstance(module, nn.Sequential):
            children = list(module.named_children())
            for (_, conv), (name, norm) in zip(children, children[1:]):
                if foldable(conv, norm):
                    fold_into(conv, norm)
                    setattr(module, name, nn.Identity())
                    folded += 1
        pairs = getattr(module, "conv_norm_pairs", None)
        for conv_name, norm_name in pairs() if callable(pairs) else ():
            conv, norm = getattr(module, conv_name), getattr(module, norm_name)
            if foldable(conv, norm):
                fold_into(conv, norm)
                setattr(module, norm_name, nn.Identity())
                folded += 1
    return folded
