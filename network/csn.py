"""Channel-separated 3D ResNets (CSN) as encoders of 3DC-Seg.

Tran et al., "Video Classification with Channel-Separated Convolutional Networks", ICCV 2019.
3DC-Seg uses the "interaction-reduced" ir-CSN-152 (depths 3, 8, 36, 3) pretrained on IG-65M and
fine-tuned on Kinetics-400 (`irCSN_152_ft_kinetics_from_ig65m_f126851907`); the original also
builds the "interaction-preserved" ip-CSN-152. Both have a (3, 7, 7) stem; the encoder's own
(1, 3, 3) max-pool does not pool over time (network/resnet3d.py).
"""

import functools

from torch import nn

from network.resnet3d import Bottleneck, Encoder3d, init_convolutions

CSN152_DEPTHS = (3, 8, 36, 3)
CSN50_DEPTHS = (3, 4, 6, 3)
CSN152_WIDTH = 64
CSN_STEM = {"kernel_size": (3, 7, 7), "padding": (1, 3, 3)}


def depthwise_conv(planes: int, stride: int) -> list[nn.Conv3d]:
    """ir-CSN's bottleneck middle: a 3x3x3 depthwise convolution. The original's block accepts a
    dilation argument and ignores it (dilation 1 always)."""
    return [nn.Conv3d(planes, planes, kernel_size=3, stride=stride, padding=1, groups=planes, bias=False)]


def ip_convs(planes: int, stride: int) -> list[nn.Conv3d]:
    """ip-CSN's bottleneck middle: a 1x1x1 convolution (BatchNorm, no ReLU), then the depthwise one;
    the block's convolutions are conv1 (reduce), conv2 (1x1x1), conv3 (depthwise), conv4 (expand)."""
    return [nn.Conv3d(planes, planes, kernel_size=1, bias=False), *depthwise_conv(planes, stride)]


IR_BOTTLENECK = functools.partial(Bottleneck, conv_builder=depthwise_conv)
IP_BOTTLENECK = functools.partial(Bottleneck, conv_builder=ip_convs)


def csn_ir(depths=CSN152_DEPTHS, width: int = CSN152_WIDTH, bn_eps: float = 1e-5,
           pixel_mean=(114.7748, 107.7354, 99.4750), pixel_std=(1.0, 1.0, 1.0),
           conv_init: str = "he") -> Encoder3d:
    """ir-CSN (`resnet152_csn_ir`, depths 3,8,36,3: the paper's encoder; `resnet50_csn_ir`,
    3,4,6,3). Backbone weights: `irCSN_152_ft_kinetics_from_ig65m_f126851907.pth`. As in the
    original, the stem keeps PyTorch's default init under conv_init 'original' (it is swapped
    in after the ResNet's init loop); 'he' initialises it like every other convolution."""
    encoder = Encoder3d(IR_BOTTLENECK, depths, width, CSN_STEM, bn_eps, pixel_mean, pixel_std)
    init_convolutions(encoder, conv_init, skip=[encoder.conv1] if conv_init == "original" else [])
    return encoder


def csn_ip(depths=CSN152_DEPTHS, width: int = CSN152_WIDTH, bn_eps: float = 1e-5,
           pixel_mean=(114.7748, 107.7354, 99.4750), pixel_std=(1.0, 1.0, 1.0),
           conv_init: str = "he") -> Encoder3d:
    """ip-CSN (`resnet152_csn_ip`, depths 3,8,36,3). Backbone weights: VMZ's ip-CSN-152 files
    (e.g. `ipCSN_152_ft_kinetics_from_ig65m`), in any format of checkpoints/backbone_formats.py.
    The stem pads time by 1 like ir-CSN's: the original pads it by 3 for a temporal kernel of 3,
    so an 8-frame clip left its stem with 12 frames and the output had 12 (SPEC §11 item 12)."""
    encoder = Encoder3d(IP_BOTTLENECK, depths, width, CSN_STEM, bn_eps, pixel_mean, pixel_std)
    init_convolutions(encoder, conv_init, skip=[encoder.conv1] if conv_init == "original" else [])
    return encoder
