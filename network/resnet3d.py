"""The 3D ResNet encoder shared by every backbone, its standard blocks, and the initialisation.

`Encoder3d` is the original's `Encoder3d` wrapped around its Hara-style 3D `ResNet`
(Hara et al., "Can Spatiotemporal 3D CNNs Retrace the History of 2D CNNs and ImageNet?",
CVPR 2018; SPEC §4.2-4.3): input normalisation, a stem convolution with stride (1, 2, 2), the
encoder's own (1, 3, 3) max-pool that does not pool over time, and four stages of residual blocks.
Stage s has bottleneck width `width * 2**s`; layers 2-4 halve T, H and W. The block decides the
rest: `BasicBlock` and `Bottleneck` here; the channel-separated blocks of network/csn.py are this
`Bottleneck` with depthwise middle convolutions.

Every block takes (in_channels, planes, stride, bn_eps), builds its 1x1x1 projection shortcut
(`downsample`, the original's shortcut type "B") when the stride or the channels change, and
sets `out_channels` (planes for basic blocks, planes * 4 for bottlenecks).
"""

import math

import torch
from torch import nn

RESNET_STEM = {"kernel_size": (7, 7, 7), "padding": (3, 3, 3)}  # the Hara ResNet's stem
CONV_INITS = ("he", "original")


def projection(in_channels: int, out_channels: int, stride: int, bn_eps: float):
    """The projection shortcut: 1x1x1 convolution with the block's stride, then BatchNorm."""
    return nn.Sequential(
        nn.Conv3d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
        nn.BatchNorm3d(out_channels, eps=bn_eps),
    )


class BasicBlock(nn.Module):
    """Two full 3x3x3 convolutions, each followed by BatchNorm (ResNet-10/18/34)."""

    def __init__(self, in_channels: int, planes: int, stride: int, bn_eps: float):
        super().__init__()
        self.conv1 = nn.Conv3d(in_channels, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm3d(planes, eps=bn_eps)
        self.conv2 = nn.Conv3d(planes, planes, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm3d(planes, eps=bn_eps)
        self.relu = nn.ReLU(inplace=True)
        self.out_channels = planes
        self.downsample = None
        if stride != 1 or in_channels != planes:
            self.downsample = projection(in_channels, planes, stride, bn_eps)

    @staticmethod
    def conv_norm_pairs() -> list[tuple[str, str]]:
        """(convolution, BatchNorm) whose BatchNorm reads that convolution's output only
        (network/fold_bn.py)."""
        return [("conv1", "bn1"), ("conv2", "bn2")]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + shortcut)


def full_conv(planes: int, stride: int) -> list[nn.Conv3d]:
    """The 3D ResNet bottleneck's middle: one full 3x3x3 convolution."""
    return [nn.Conv3d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)]


class Bottleneck(nn.Module):
    """1x1x1 reduce -> middle -> 1x1x1 expand, each convolution followed by BatchNorm.

    `conv_builder(planes, stride)` makes the middle's convolutions (cf. torchvision's video ResNet,
    which passes a `conv_builder` to its blocks): `full_conv` for the 3D ResNets (ResNet-50..200),
    network/csn.py's depthwise ones for ir-CSN and ip-CSN. The convolutions are numbered in order,
    conv1/bn1 (reduce), conv2/bn2, ... (middle), the last (expand); ReLU follows the reduce, the
    middle's last convolution and the sum with the shortcut.
    """

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int, bn_eps: float, conv_builder=full_conv):
        super().__init__()
        self.out_channels = planes * self.expansion
        convs = [nn.Conv3d(in_channels, planes, kernel_size=1, bias=False), *conv_builder(planes, stride),
                 nn.Conv3d(planes, self.out_channels, kernel_size=1, bias=False)]
        for number, conv in enumerate(convs, start=1):
            self.add_module(f"conv{number}", conv)
            self.add_module(f"bn{number}", nn.BatchNorm3d(conv.out_channels, eps=bn_eps))
        self.num_convs = len(convs)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_channels != self.out_channels:
            self.downsample = projection(in_channels, self.out_channels, stride, bn_eps)

    def conv_norm_pairs(self) -> list[tuple[str, str]]:
        """(convolution, BatchNorm) whose BatchNorm reads that convolution's output only
        (network/fold_bn.py)."""
        return [(f"conv{number}", f"bn{number}") for number in range(1, self.num_convs + 1)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = x
        for number in range(1, self.num_convs + 1):  # modules looked up by name: SyncBatchNorm replaces them
            out = getattr(self, f"bn{number}")(getattr(self, f"conv{number}")(out))
            if number in (1, self.num_convs - 1):
                out = self.relu(out)
        return self.relu(out + shortcut)


class Encoder3d(nn.Module):
    """Normalisation, stem, max-pool and four stages; returns features at strides 4..32.

    Input: a clip in [0, 1] of shape (N, 3, T, H, W), RGB. The original normalises as
    ((255 x - mean) / std) / 255 with std = 1, i.e. it subtracts mean / 255 and does not divide
    by a real standard deviation; `mean` and `std` are buffers so checkpoints carry them.
    `out_channels` lists the channels of r2..r5, which the decoder follows.
    """

    def __init__(self, block, depths, width: int, stem: dict, bn_eps: float = 1e-5,
                 pixel_mean=(114.7748, 107.7354, 99.4750), pixel_std=(1.0, 1.0, 1.0)):
        super().__init__()
        self.register_buffer("mean", torch.tensor(pixel_mean, dtype=torch.float32).view(1, 3, 1, 1, 1))
        self.register_buffer("std", torch.tensor(pixel_std, dtype=torch.float32).view(1, 3, 1, 1, 1))
        self.conv1 = nn.Conv3d(3, width, stride=(1, 2, 2), bias=False, **stem)
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
                blocks.append(block(in_channels, planes, stride if index == 0 else 1, bn_eps))
                in_channels = blocks[-1].out_channels
            setattr(self, f"layer{stage + 1}", nn.Sequential(*blocks))
            self.out_channels.append(in_channels)

    @staticmethod
    def conv_norm_pairs() -> list[tuple[str, str]]:
        """(convolution, BatchNorm) whose BatchNorm reads that convolution's output only
        (network/fold_bn.py): the stem."""
        return [("conv1", "bn1")]

    def forward(self, clip: torch.Tensor):
        x = ((clip * 255 - self.mean) / self.std) / 255  # (N, 3, T, H, W)
        x = self.relu(self.bn1(self.conv1(x)))          # (N, w, T, H/2, W/2)
        x = self.maxpool(x)                             # (N, w, T, H/4, W/4)
        r2 = self.layer1(x)                             # (N, c2, T, H/4, W/4)     c2 = w * expansion
        r3 = self.layer2(r2)                            # (N, 2 c2, T/2, H/8, W/8)
        r4 = self.layer3(r3)                            # (N, 4 c2, T/4, H/16, W/16)
        r5 = self.layer4(r4)                            # (N, 8 c2, T/8, H/32, W/32)
        return r5, r4, r3, r2


def original_conv_std(conv: nn.Conv3d) -> float:
    """The original's sqrt(2 / n) with n = kT * kH * out_channels: the kernel width is missing
    (a 2D formula applied to 3D kernels, SPEC §4.2 and §11 item 12)."""
    return math.sqrt(2.0 / (conv.kernel_size[0] * conv.kernel_size[1] * conv.out_channels))


def init_convolutions(module: nn.Module, conv_init: str, skip=()) -> None:
    """Random init of every Conv3d of `module` except those in `skip`, which keep PyTorch's default.

    he: Normal(0, sqrt(2 / (kT kH kW out))), He et al.'s fan-out init for ReLU networks;
    original: Normal(0, sqrt(2 / (kT kH out))), the original's formula without the kernel width.
    BatchNorm keeps weight 1 and bias 0, as both set it. On the meta device (a network whose
    weights are about to be loaded) there is nothing to draw, and torch's meta `normal_` would
    import torch._dynamo: nothing is done.
    """
    if conv_init not in CONV_INITS:
        raise ValueError(f"conv_init must be one of {CONV_INITS}, got {conv_init!r}")
    skipped = {id(conv) for conv in skip}
    for conv in module.modules():
        if isinstance(conv, nn.Conv3d) and id(conv) not in skipped and not conv.weight.is_meta:
            if conv_init == "he":
                nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            else:
                nn.init.normal_(conv.weight, 0.0, original_conv_std(conv))


def resnet(depths, width: int, bn_eps: float, pixel_mean, pixel_std, conv_init: str = "he") -> Encoder3d:
    """3D ResNet with standard bottlenecks and the original's 7x7x7 stem (`resnet50`,
    `resnet101`, `resnet152`, `resnet200` of the original's Resnet3d.py for depths 3,4,6,3 /
    3,4,23,3 / 3,8,36,3 / 3,24,36,3 at width 64). Hara et al. published Kinetics weights for it
    (3D-ResNets-PyTorch); the original ships none."""
    encoder = Encoder3d(Bottleneck, depths, width, RESNET_STEM, bn_eps, pixel_mean, pixel_std)
    init_convolutions(encoder, conv_init)
    return encoder


def resnet_basic(depths, width: int, bn_eps: float, pixel_mean, pixel_std, conv_init: str = "he") -> Encoder3d:
    """3D ResNet with basic blocks (`resnet10`, `resnet18`, `resnet34` of the original for depths
    1,1,1,1 / 2,2,2,2 / 3,4,6,3 at width 64). r5 has 8 * width channels (512), which the
    original's decoder, written for 2048, cannot take; ours follows the encoder's widths."""
    encoder = Encoder3d(BasicBlock, depths, width, RESNET_STEM, bn_eps, pixel_mean, pixel_std)
    init_convolutions(encoder, conv_init)
    return encoder
