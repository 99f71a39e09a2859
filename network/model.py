"""The 3DC-Seg network: 3D encoder + 3D decoder (Mahadevan et al., "Making a Case for 3D
Convolutions for Object Segmentation in Videos", BMVC 2020, arXiv 2008.11516).

Submodule names are the checkpoint format of the original `SaliencyNetwork`
(`encoder.*`, `decoders.0.*`), so the released `bmvc_final.pth` maps onto this model by name.
`network.build_model` assembles it from the encoder and block tables.
"""

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from network.decoder import Decoder3d
from network.resnet3d import Encoder3d


class SaliencyNetwork(nn.Module):
    """(N, 3, T, H, W) clip in [0, 1] -> (N, num_classes, T, H, W) logits; channel 1 = foreground.

    H and W must be multiples of 32 and T a multiple of 8 for exact temporal halving.
    """

    def __init__(self, encoder: Encoder3d, decoder: Decoder3d, bn_mode: str = "frozen"):
        super().__init__()
        self.encoder = encoder
        self.decoders = nn.ModuleList([decoder])
        self.bn_mode = bn_mode
        if bn_mode == "frozen":
            for module in self.encoder.modules():
                if isinstance(module, _BatchNorm):
                    module.weight.requires_grad_(False)
                    module.bias.requires_grad_(False)

    def train(self, mode: bool = True):
        """With bn_mode 'frozen' the encoder's BatchNorm layers stay in eval mode (running
        statistics neither used from the batch nor updated); with 'train' they train."""
        super().train(mode)
        if mode and self.bn_mode == "frozen":
            for module in self.encoder.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        r5, r4, r3, r2 = self.encoder(clip)
        return self.decoders[0](r5, r4, r3, r2)  # (N, K, T, H, W)

