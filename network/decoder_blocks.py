"""The decoder's exchangeable blocks, as the original's network/Modules.py computes them (SPEC §4.6).

Inter blocks (the decoder's `GC`, on r5): `(in_channels, out_channels)`, (N, in, t, h, w) ->
(N, out, t, h, w). Refine blocks (`RF4`, `RF3`, `RF2`): `(in_channels, out_channels)`,
forward(skip, coarse) -> a map of the skip's (T, H, W) with out_channels. Attribute names are the
original's, so its checkpoints of every variant load by name. The tables that name them for
`model.inter_block` and `model.refine_block` are in network/__init__.py.

Resizes are trilinear with align_corners=False unless noted; convolutions have biases unless
noted. BatchNorm and GroupNorm inside these blocks always train (model.bn_mode is the encoder's).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn


def conv3x3x3(in_channels: int, out_channels: int) -> nn.Conv3d:
    return nn.Conv3d(in_channels, out_channels, kernel_size=3, padding=1)


def depthwise3x3x3(channels: int, bias: bool = True) -> nn.Conv3d:
    return nn.Conv3d(channels, channels, kernel_size=3, padding=1, groups=channels, bias=bias)


def resize_to(x: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="trilinear", align_corners=False)


# ----- inter blocks ---------------------------------------------------------------------------

class GC3d(nn.Module):
    """Global convolution with large separable (1, k, 1) + (1, 1, k) kernels (temporal size 1).

    The original's inner width is fixed at 256; here it is out_channels (256 in the paper)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 7):
        super().__init__()
        pad = kernel // 2
        self.conv_l1 = nn.Conv3d(in_channels, out_channels, (1, kernel, 1), padding=(0, pad, 0))
        self.conv_l2 = nn.Conv3d(out_channels, out_channels, (1, 1, kernel), padding=(0, 0, pad))
        self.conv_r1 = nn.Conv3d(in_channels, out_channels, (1, 1, kernel), padding=(0, 0, pad))
        self.conv_r2 = nn.Conv3d(out_channels, out_channels, (1, kernel, 1), padding=(0, pad, 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_l2(self.conv_l1(x)) + self.conv_r2(self.conv_r1(x))


class C3D(nn.Module):
    """A single 3x3x3 convolution."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.c3d = conv3x3x3(in_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c3d(x)


class NonLocalBlock3d(nn.Module):
    """Embedded-Gaussian non-local block (Wang et al., CVPR 2018) with sub-sampling: g and phi
    are max-pooled by (1, 2, 2); the output projection W ends in a BatchNorm initialised to zero,
    so the block starts as the identity."""

    def __init__(self, channels: int):
        super().__init__()
        self.inter_channels = max(channels // 2, 1)
        pool = nn.MaxPool3d(kernel_size=(1, 2, 2))
        self.g = nn.Sequential(nn.Conv3d(channels, self.inter_channels, kernel_size=1), pool)
        self.W = nn.Sequential(nn.Conv3d(self.inter_channels, channels, kernel_size=1),
                               nn.BatchNorm3d(channels))
        nn.init.zeros_(self.W[1].weight)
        nn.init.zeros_(self.W[1].bias)
        self.theta = nn.Conv3d(channels, self.inter_channels, kernel_size=1)
        self.phi = nn.Sequential(nn.Conv3d(channels, self.inter_channels, kernel_size=1), pool)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[:2]
        g = self.g(x).flatten(2).transpose(1, 2)              # (N, thw/4, C/2)
        theta = self.theta(x).flatten(2).transpose(1, 2)      # (N, thw, C/2)
        phi = self.phi(x).flatten(2)                          # (N, C/2, thw/4)
        attention = F.softmax(theta @ phi, dim=-1)            # (N, thw, thw/4)
        y = (attention @ g).transpose(1, 2).reshape(n, self.inter_channels, *x.shape[2:])
        return self.W(y) + x                                  # (N, C, t, h, w)


class NL(nn.Module):
    """1x1x1 convolution to out_channels, then a non-local block."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.nl = nn.Sequential(nn.Conv3d(in_channels, out_channels, kernel_size=1),
                                NonLocalBlock3d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nl(x)


class ASPPConv(nn.Sequential):
    """Atrous branch: grouped (1, 3, 3) convolution with spatial dilation (groups = out_channels),
    ReLU, GroupNorm(16), 1x1x1 to out_channels, ReLU, GroupNorm(16); no biases."""

    def __init__(self, in_channels: int, out_channels: int, dilation: int):
        super().__init__(
            nn.Conv3d(in_channels, in_channels, (1, 3, 3), padding=(0, dilation, dilation),
                      dilation=(1, dilation, dilation), groups=out_channels, bias=False),
            nn.ReLU(inplace=True),
            nn.GroupNorm(16, in_channels),
            nn.Conv3d(in_channels, out_channels, kernel_size=1, bias=False),
            nn.ReLU(inplace=True),
            nn.GroupNorm(16, out_channels),
        )


class ASPPImagePooler(nn.Module):
    """Spatial mean -> 1x1x1 convolution -> ReLU -> GroupNorm(16), spread back over (H, W)
    (trilinear, align_corners=True as in the original)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool3d((None, 1, 1))
        self.conv = nn.Conv3d(in_channels, out_channels, kernel_size=1, bias=False)
        self.gn = nn.GroupNorm(16, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.gn(F.relu(self.conv(self.pool(x))))  # (N, C, t, 1, 1)
        return F.interpolate(pooled, size=x.shape[2:], mode="trilinear", align_corners=True)


class ASPP(nn.Module):
    """The original's `ASPPModule`: five parallel branches of out_channels / 4 channels (1x1x1,
    atrous with dilation 3, 6, 9, image pooling), concatenated, 1x1x1 to out_channels, ReLU,
    GroupNorm(32). Its convolutions get the original's explicit init Normal(0, sqrt(2 / n)),
    n = kT * kH * out (kernel width left out, as in the encoder's `original` init)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        inter = out_channels // 4
        self.pyramid_layers = nn.ModuleList([
            nn.Sequential(nn.Conv3d(in_channels, inter, kernel_size=1, bias=False),
                          nn.ReLU(inplace=True), nn.GroupNorm(16, inter)),
            ASPPConv(in_channels, inter, 3),
            ASPPConv(in_channels, inter, 6),
            ASPPConv(in_channels, inter, 9),
            ASPPImagePooler(in_channels, inter),
        ])
        self.conv = nn.Conv3d(inter * 5, out_channels, kernel_size=1, bias=False)
        self.gn = nn.GroupNorm(32, out_channels)
        for conv in self.modules():
            if isinstance(conv, nn.Conv3d) and not conv.weight.is_meta:  # meta: nothing to draw
                n = conv.kernel_size[0] * conv.kernel_size[1] * conv.out_channels
                nn.init.normal_(conv.weight, 0.0, math.sqrt(2.0 / n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = torch.cat([layer(x) for layer in self.pyramid_layers], dim=1)  # (N, 5 C/4, t, h, w)
        return self.gn(F.relu(self.conv(branches)))                               # (N, C, t, h, w)


# ----- refine blocks --------------------------------------------------------------------------

class Refine3d(nn.Module):
    """Merge a skip feature with the coarser decoder map, upsampled to the skip's (T, H, W):
    s = FS1(skip); s += FS3(relu(FS2(relu(s)))); m = s + up(coarse); m += MM2(relu(MM1(relu(m)))).

    Subclasses change the convolutions (`make_conv`) or the upsampling (`upsample`)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.convFS1 = self.make_conv(in_channels, out_channels, first=True)
        self.convFS2 = self.make_conv(out_channels, out_channels, first=False)
        self.convFS3 = self.make_conv(out_channels, out_channels, first=False)
        self.convMM1 = self.make_conv(out_channels, out_channels, first=False)
        self.convMM2 = self.make_conv(out_channels, out_channels, first=False)

    @staticmethod
    def make_conv(in_channels: int, out_channels: int, first: bool) -> nn.Module:
        return conv3x3x3(in_channels, out_channels)

    def upsample(self, coarse: torch.Tensor, size) -> torch.Tensor:
        return resize_to(coarse, size)

    def forward(self, skip: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        s = self.convFS1(skip)
        s = s + self.convFS3(F.relu(self.convFS2(F.relu(s))))
        m = s + self.upsample(coarse, s.shape[2:])
        return m + self.convMM2(F.relu(self.convMM1(F.relu(m))))


class Refine2plus1d(Refine3d):
    """Refine3d with every convolution a (2+1)D one: (1, 3, 3) -> BatchNorm -> ReLU -> (3, 1, 1),
    2 * out + 32 middle channels, no biases (torchvision's `Conv2Plus1D`, as in the original)."""

    @staticmethod
    def make_conv(in_channels: int, out_channels: int, first: bool) -> nn.Module:
        from torchvision.models.video.resnet import Conv2Plus1D  # torchvision's model zoo: imported only here
        return Conv2Plus1D(in_channels, out_channels, 2 * out_channels + 32)


class Refine3dLight(Refine3d):
    """Refine3d with every convolution 1x1x1 -> ReLU -> depthwise 3x3x3."""

    @staticmethod
    def make_conv(in_channels: int, out_channels: int, first: bool) -> nn.Module:
        return nn.Sequential(nn.Conv3d(in_channels, out_channels, kernel_size=1), nn.ReLU(),
                             depthwise3x3x3(out_channels))


class Refine3dDG(Refine3d):
    """Refine3d with FS1 = 1x1x1 -> depthwise 3x3x3 and the other four convolutions depthwise
    3x3x3 only (no channel mixing after FS1)."""

    @staticmethod
    def make_conv(in_channels: int, out_channels: int, first: bool) -> nn.Module:
        if first:
            return nn.Sequential(nn.Conv3d(in_channels, out_channels, kernel_size=1),
                                 depthwise3x3x3(out_channels))
        return nn.Sequential(depthwise3x3x3(out_channels))


class Refine3dLightGN(Refine3d):
    """Every convolution depthwise 3x3x3 -> GroupNorm(32) -> ReLU -> 1x1x1 -> GroupNorm(32) ->
    ReLU, without biases; the forward pass adds no ReLUs of its own."""

    @staticmethod
    def make_conv(in_channels: int, out_channels: int, first: bool) -> nn.Module:
        return nn.Sequential(
            depthwise3x3x3(in_channels, bias=False), nn.GroupNorm(32, in_channels), nn.ReLU(inplace=True),
            nn.Conv3d(in_channels, out_channels, kernel_size=1, bias=False), nn.GroupNorm(32, out_channels),
            nn.ReLU(inplace=True))

    def forward(self, skip: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        s = self.convFS1(skip)
        s = s + self.convFS3(self.convFS2(s))
        m = s + resize_to(coarse, s.shape[2:])
        return m + self.convMM2(self.convMM1(m))


class Refine3dConvTranspose(Refine3d):
    """Refine3d that upsamples the coarse map with a learnt ConvTranspose3d(2, stride 2) + ReLU;
    the skip must be exactly twice the coarse map's size in T, H and W (clip_length a multiple
    of 8)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(in_channels, out_channels)
        self.conv_t = nn.ConvTranspose3d(out_channels, out_channels, kernel_size=2, stride=2)

    def upsample(self, coarse: torch.Tensor, size) -> torch.Tensor:
        return F.relu(self.conv_t(coarse))


class RefineSimple(nn.Module):
    """concat(skip, resized coarse) -> 3x3x3 -> ReLU -> 3x3x3; no residual connections."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.convMM1 = conv3x3x3(out_channels + in_channels, out_channels)
        self.convMM2 = conv3x3x3(out_channels, out_channels)

    def forward(self, skip: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        m = torch.cat((skip, resize_to(coarse, skip.shape[2:])), dim=1)
        return self.convMM2(F.relu(self.convMM1(m)))
