"""3DC-Seg decoder: a 3D Global Convolution block on the coarsest features, then three 3D
Refinement modules that merge the skip connections (Mahadevan et al., BMVC 2020, Sec. 3).

All convolutions have biases and there is no normalisation, as in the original. Resizes are
trilinear with align_corners=False.
"""

import torch
import torch.nn.functional as F
from torch import nn


def conv3x3x3(in_channels: int, out_channels: int) -> nn.Conv3d:
    return nn.Conv3d(in_channels, out_channels, kernel_size=3, padding=1)


class GC3d(nn.Module):
    """Global convolution with large separable (1, k, 1) + (1, 1, k) kernels (temporal size 1)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 7):
        super().__init__()
        pad = kernel // 2
        self.conv_l1 = nn.Conv3d(in_channels, out_channels, (1, kernel, 1), padding=(0, pad, 0))
        self.conv_l2 = nn.Conv3d(out_channels, out_channels, (1, 1, kernel), padding=(0, 0, pad))
        self.conv_r1 = nn.Conv3d(in_channels, out_channels, (1, 1, kernel), padding=(0, 0, pad))
        self.conv_r2 = nn.Conv3d(out_channels, out_channels, (1, kernel, 1), padding=(0, pad, 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_l2(self.conv_l1(x)) + self.conv_r2(self.conv_r1(x))


class Refine3d(nn.Module):
    """Merge a skip feature with the coarser decoder map, upsampled to the skip's (T, H, W)."""

    def __init__(self, in_channels: int, channels: int):
        super().__init__()
        self.convFS1 = conv3x3x3(in_channels, channels)
        self.convFS2 = conv3x3x3(channels, channels)
        self.convFS3 = conv3x3x3(channels, channels)
        self.convMM1 = conv3x3x3(channels, channels)
        self.convMM2 = conv3x3x3(channels, channels)

    def forward(self, skip: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        s = self.convFS1(skip)
        s = s + self.convFS3(F.relu(self.convFS2(F.relu(s))))
        m = s + F.interpolate(coarse, size=s.shape[2:], mode="trilinear", align_corners=False)
        return m + self.convMM2(F.relu(self.convMM1(F.relu(m))))


class Decoder3d(nn.Module):
    """GC3d + residual convG1/convG2 on r5, Refine3d with r4, r3 and r2, then pred2.

    Only pred2 is built: the original's pred3-pred5 heads are computed and discarded, so they
    never influence the output (their checkpoint tensors are ignored on load).
    """

    def __init__(self, encoder_channels, channels: int = 256, num_classes: int = 2):
        super().__init__()
        c2, c3, c4, c5 = encoder_channels
        self.GC = GC3d(c5, channels)
        self.convG1 = conv3x3x3(channels, channels)
        self.convG2 = conv3x3x3(channels, channels)
        self.RF4 = Refine3d(c4, channels)
        self.RF3 = Refine3d(c3, channels)
        self.RF2 = Refine3d(c2, channels)
        self.pred2 = conv3x3x3(channels, num_classes)

    def forward(self, r5, r4, r3, r2) -> torch.Tensor:
        x = self.GC(r5)                                       # (N, C, T/8, H/32, W/32)
        m5 = x + self.convG2(F.relu(self.convG1(F.relu(x))))  # (N, C, T/8, H/32, W/32)
        m4 = self.RF4(r4, m5)                                 # (N, C, T/4, H/16, W/16)
        m3 = self.RF3(r3, m4)                                 # (N, C, T/2, H/8, W/8)
        m2 = self.RF2(r2, m3)                                 # (N, C, T, H/4, W/4)
        p2 = self.pred2(F.relu(m2))                           # (N, K, T, H/4, W/4)
        return F.interpolate(p2, scale_factor=(1, 4, 4), mode="trilinear",
                             align_corners=False)             # (N, K, T, H, W)
