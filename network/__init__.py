"""Network construction: one table per exchangeable part and one `build_model(model)` that reads
the config's `model` section.

The names are the original's (SPEC §3.3, §4.2, §4.6), except that the backbone names leave the
depth to `model.depths` (resnet152_csn_ir = csn_ir with depths 3,8,36,3) and `ASPP` is the
original's `ASPPModule`. The paper's network is csn_ir + GC3d + Refine3d.
"""

from network.csn import csn_ip, csn_ir
from network.decoder import Decoder3d
from network.decoder_blocks import (
    ASPP, C3D, GC3d, NL, Refine2plus1d, Refine3d, Refine3dConvTranspose, Refine3dDG, Refine3dLight,
    Refine3dLightGN, RefineSimple)
from network.model import SaliencyNetwork
from network.resnet3d import resnet, resnet_basic
from utils.config import ModelConfig
from utils.errors import UserError
from utils.registry import pick

BACKBONES = {
    "csn_ir": csn_ir,  # ir-CSN: depthwise 3x3x3 in the bottleneck (the paper's; 3,8,36,3 = ir-CSN-152)
    "csn_ip": csn_ip,  # ip-CSN: 1x1x1 + depthwise 3x3x3 in the bottleneck (3,8,36,3 = ip-CSN-152)
    "resnet": resnet,  # 3D ResNet, full 3x3x3 bottlenecks (3,4,6,3 = ResNet-50 ... 3,24,36,3 = 200)
    "resnet_basic": resnet_basic,  # 3D ResNet, basic blocks (1,1,1,1 = ResNet-10, 2,2,2,2 = 18, 3,4,6,3 = 34)
}
INTER_BLOCKS = {"GC3d": GC3d, "C3D": C3D, "NL": NL, "ASPP": ASPP}
REFINE_BLOCKS = {
    "Refine3d": Refine3d, "Refine2plus1d": Refine2plus1d, "Refine3dLight": Refine3dLight,
    "Refine3dLightGN": Refine3dLightGN, "Refine3dDG": Refine3dDG,
    "Refine3dConvTranspose": Refine3dConvTranspose, "RefineSimple": RefineSimple,
}


def build_model(model: ModelConfig) -> SaliencyNetwork:
    """3DC-Seg with the encoder and decoder blocks a `ModelConfig` names.

    csn_ir with depths (3, 8, 36, 3), width 64, decoder_width 256, GC3d and Refine3d is the
    paper's network (backbone weights `irCSN_152_ft_kinetics_from_ig65m_f126851907.pth`,
    released checkpoint `bmvc_final.pth`); smaller values give the tiny models used for tests
    and the demo.
    """
    encoder = pick(BACKBONES, model.backbone, "backbone")(
        depths=tuple(model.depths), width=model.width, bn_eps=model.bn_eps,
        pixel_mean=tuple(model.pixel_mean), pixel_std=tuple(model.pixel_std), conv_init=model.encoder_init)
    check_group_norm_widths(encoder.out_channels, model.decoder_width, model.inter_block, model.refine_block)
    decoder = Decoder3d(encoder.out_channels, channels=model.decoder_width, num_classes=model.num_classes,
                        inter_block=pick(INTER_BLOCKS, model.inter_block, "inter block"),
                        refine_block=pick(REFINE_BLOCKS, model.refine_block, "refine block"))
    return SaliencyNetwork(encoder, decoder, bn_mode=model.bn_mode)


def check_group_norm_widths(encoder_channels, decoder_width: int, inter_block: str,
                            refine_block: str) -> None:
    """The GroupNorm blocks need channel counts their group counts divide (ASPP: GroupNorm(16) on
    r5 and on decoder_width / 4, with at least two channels per group because its image-pooling
    branch normalises a 1x1 map; GroupNorm(32) on decoder_width; Refine3dLightGN: GroupNorm(32)
    on r2..r4 and decoder_width)."""
    c2, c5 = encoder_channels[0], encoder_channels[3]
    if inter_block == "ASPP" and (decoder_width % 64 or decoder_width < 128
                                  or c5 % (decoder_width // 4) or c5 % 16):
        raise UserError(f"model.inter_block ASPP needs model.decoder_width a multiple of 64, at least 128, and "
                        f"encoder output channels ({c5}) a multiple of 16 and of decoder_width / 4; "
                        f"got decoder_width {decoder_width}")
    if refine_block == "Refine3dLightGN" and (decoder_width % 32 or c2 % 32):
        raise UserError(f"model.refine_block Refine3dLightGN needs model.decoder_width and the "
                        f"encoder's r2 channels ({c2}, from model.width) to be multiples of 32; "
                        f"got decoder_width {decoder_width}")
