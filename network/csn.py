"""Channel-separated 3D ResNet encoder (ir-CSN) as used by 3DC-Seg.

Tran et al., "Video Classification with Channel-Separated Convolutional Networks", ICCV 2019,
in the "interaction-reduced" (ir) variant: every 3x3x3 convolution of a bottleneck is depthwise.
3DC-Seg uses ir-CSN-152 (depths 3, 8, 36, 3) pretrained on IG-65M and fine-tuned on Kinetics-400
(`irCSN_152_ft_kinetics_from_ig65m_f126851907`), with a (3, 7, 7) stem and its own (1, 3, 3)
max-pool that does not pool over time. Layers 2-4 halve T, H and W.
"""

import torch
from torch import nn

EXPANSION = 4
CSN152_DEPTHS = (3, 8, 36, 3)
CSN152_WIDTH = 64


class IrBottleneck(nn.Module):
    """1x1x1 reduce -> 3x3x3 depthwise -> 1x1x1 expand, each followed by BatchNorm."""

    def __init__(self, in_channels: int, planes: int, stride: int, bn_eps: float):
        super().__init__()
        out_channels = planes * EXPANSION
        self.conv1 = nn.Conv3d(in_channels, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm3d(planes, eps=bn_eps)
        self.conv2 = nn.Conv3d(planes, planes, kernel_size=3, stride=stride, padding=1,
                               groups=planes, bias=False)
        self.bn2 = nn.BatchNorm3d(planes, eps=bn_eps)
        self.conv3 = nn.Conv3d(planes, out_channels, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm3d(out_channels, eps=bn_eps)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv3d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm3d(out_channels, eps=bn_eps),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + shortcut)


class CSNEncoder(nn.Module):
    """Normalisation, stem, max-pool and four ir-CSN stages; returns features at strides 4..32.

    Input: a clip in [0, 1] of shape (N, 3, T, H, W), RGB. The original normalises as
    ((255 x - mean) / std) / 255 with std = 1, i.e. it subtracts mean / 255 and does not divide
    by a real standard deviation; `mean` and `std` are buffers so checkpoints carry them.
    """

    def __init__(self, depths=CSN152_DEPTHS, width: int = CSN152_WIDTH, bn_eps: float = 1e-5,
                 pixel_mean=(114.7748, 107.7354, 99.4750), pixel_std=(1.0, 1.0, 1.0)):
        super().__init__()
        self.register_buffer("mean", torch.tensor(pixel_mean, dtype=torch.float32).view(1, 3, 1, 1, 1))
        self.register_buffer("std", torch.tensor(pixel_std, dtype=torch.float32).view(1, 3, 1, 1, 1))
        self.conv1 = nn.Conv3d(3, width, kernel_size=(3, 7, 7), stride=(1, 2, 2),
                               padding=(1, 3, 3), bias=False)
        self.bn1 = nn.BatchNorm3d(width, eps=bn_eps)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))
        in_channels = width
        self.out_channels = []
        for stage, depth in enumerate(depths):
            planes = width * 2 ** stage
            stride = 1 if stage == 0 else 2
            blocks = []
            for index in range(depth):
                blocks.append(IrBottleneck(in_channels, planes, stride if index == 0 else 1, bn_eps))
                in_channels = planes * EXPANSION
            setattr(self, f"layer{stage + 1}", nn.Sequential(*blocks))
            self.out_channels.append(in_channels)

    def forward(self, clip: torch.Tensor):
        x = ((clip * 255 - self.mean) / self.std) / 255  # (N, 3, T, H, W)
        x = self.relu(self.bn1(self.conv1(x)))          # (N, w, T, H/2, W/2)
        x = self.maxpool(x)                             # (N, w, T, H/4, W/4)
        r2 = self.layer1(x)                             # (N, 4w, T, H/4, W/4)
        r3 = self.layer2(r2)                            # (N, 8w, T/2, H/8, W/8)
        r4 = self.layer3(r3)                            # (N, 16w, T/4, H/16, W/16)
        r5 = self.layer4(r4)                            # (N, 32w, T/8, H/32, W/32)
        return r5, r4, r3, r2
