"""Channel-separated 3D ResNets (CSN) as encoders of 3DC-Seg.

Tran et al., "Video Classification with Channel-Separated Convolutional Networks", ICCV 2019.
3DC-Seg uses the "interaction-reduced" ir-CSN-152 (depths 3, 8, 36, 3) pretrained on IG-65M and
fine-tuned on Kinetics-400 (`irCSN_152_ft_kinetics_from_ig65m_f126851907`); the original also
builds the "interaction-preserved" ip-CSN-152. Both have a (3, 7, 7) stem; the encoder's own
(1, 3, 3) max-pool does not pool over time (network/resnet3d.py).
"""

import torch
from torch import nn

from network.resnet3d import Bottleneck, Encoder3d, init_convolutions, projection

CSN152_DEPTHS = (3, 8, 36, 3)
CSN50_DEPTHS = (3, 4, 6, 3)
CSN152_WIDTH = 64
CSN_STEM = {"kernel_size": (3, 7, 7), "padding": (1, 3, 3)}


class IrBottleneck(Bottleneck):
    """1x1x1 reduce -> 3x3x3 depthwise -> 1x1x1 expand, each followed by BatchNorm.

    The original's block accepts a dilation argument and ignores it (dilation 1 always)."""

    @staticmethod
    def middle_conv(planes: int, stride: int) -> nn.Conv3d:
        return nn.Conv3d(planes, planes, kernel_size=3, stride=stride, padding=1, groups=planes, bias=False)


class IpBottleneck(nn.Module):
    """1x1x1 reduce -> 1x1x1 (BatchNorm, no ReLU) -> 3x3x3 depthwise -> 1x1x1 expand."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int, bn_eps: float):
        super().__init__()
        out_channels = planes * self.expansion
        self.conv1 = nn.Conv3d(in_channels, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm3d(planes, eps=bn_eps)
        self.conv2 = nn.Conv3d(planes, planes, kernel_size=1, bias=False)
        self.bn2 = nn.BatchNorm3d(planes, eps=bn_eps)
        self.conv3 = nn.Conv3d(planes, planes, kernel_size=3, stride=stride, padding=1,
                               groups=planes, bias=False)
        self.bn3 = nn.BatchNorm3d(planes, eps=bn_eps)
        self.conv4 = nn.Conv3d(planes, out_channels, kernel_size=1, bias=False)
        self.bn4 = nn.BatchNorm3d(out_channels, eps=bn_eps)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = projection(in_channels, out_channels, stride, bn_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = self.relu(self.bn3(self.conv3(out)))
        out = self.bn4(self.conv4(out))
        return self.relu(out + shortcut)


def csn_ir(depths=CSN152_DEPTHS, width: int = CSN152_WIDTH, bn_eps: float = 1e-5,
           pixel_mean=(114.7748, 107.7354, 99.4750), pixel_std=(1.0, 1.0, 1.0),
           conv_init: str = "he") -> Encoder3d:
    """ir-CSN (`resnet152_csn_ir`, depths 3,8,36,3: the paper's encoder; `resnet50_csn_ir`,
    3,4,6,3). Backbone weights: `irCSN_152_ft_kinetics_from_ig65m_f126851907.pth`. As in the
    original, the stem keeps PyTorch's default init under conv_init 'original' (it is swapped
    in after the ResNet's init loop); 'he' initialises it like every other convolution."""
    encoder = Encoder3d(IrBottleneck, depths, width, CSN_STEM, bn_eps, pixel_mean, pixel_std)
    init_convolutions(encoder, conv_init, skip=[encoder.conv1] if conv_init == "original" else [])
    return encoder


def csn_ip(depths=CSN152_DEPTHS, width: int = CSN152_WIDTH, bn_eps: float = 1e-5,
           pixel_mean=(114.7748, 107.7354, 99.4750), pixel_std=(1.0, 1.0, 1.0),
           conv_init: str = "he") -> Encoder3d:
    """ip-CSN (`resnet152_csn_ip`, depths 3,8,36,3). Backbone weights: VMZ's ip-CSN-152 files
    (e.g. `ipCSN_152_ft_kinetics_from_ig65m`), in any format of network/backbone_formats.py.
    The stem pads time by 1 like ir-CSN's: the original pads it by 3 for a temporal kernel of 3,
    so an 8-frame clip left its stem with 12 frames and the output had 12 (SPEC §11 item 12)."""
    encoder = Encoder3d(IpBottleneck, depths, width, CSN_STEM, bn_eps, pixel_mean, pixel_std)
    init_convolutions(encoder, conv_init, skip=[encoder.conv1] if conv_init == "original" else [])
    return encoder
