"""3DC-Seg decoder: an inter block on the coarsest features (3D Global Convolution in the paper),
then three refine blocks that merge the skip connections (3D Refinement modules in the paper)
(Mahadevan et al., BMVC 2020, Sec. 3). The blocks are chosen by name (network/decoder_blocks.py,
tables in network/__init__.py).

The decoder's own convolutions have biases and there is no normalisation, as in the original.
Resizes are trilinear with align_corners=False.
"""

import torch
import torch.nn.functional as F
from torch import nn

from network.decoder_blocks import GC3d, Refine3d, conv3x3x3


class Decoder3d(nn.Module):
    """Inter block + residual convG1/convG2 on r5, refine blocks with r4, r3 and r2, then pred2.

    The input widths follow the encoder (`encoder_channels` = channels of r2..r5); the original
    assumed 256/512/1024/2048. Only pred2 is built: the original's pred3-pred5 heads are computed
    and discarded, so they never influence the output (their checkpoint tensors are ignored on load).
    """

    def __init__(self, encoder_channels, channels: int = 256, num_classes: int = 2,
                 inter_block=GC3d, refine_block=Refine3d):
        super().__init__()
        c2, c3, c4, c5 = encoder_channels
        self.GC = inter_block(c5, channels)
        self.convG1 = conv3x3x3(channels, channels)
        self.convG2 = conv3x3x3(channels, channels)
        self.RF4 = refine_block(c4, channels)
        self.RF3 = refine_block(c3, channels)
        self.RF2 = refine_block(c2, channels)
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
