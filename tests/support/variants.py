"""Every named model variant once (backbone, inter block, refine block, decoder width), tiny."""

from network import BACKBONES, INTER_BLOCKS, REFINE_BLOCKS, build_model
from utils.config import ModelConfig

from support.weight_files import PIXEL_MEAN


# (backbone, inter block, refine block, decoder width): every name once, decoder widths as small
# as each block's GroupNorms allow.
VARIANTS = ([(backbone, "GC3d", "Refine3d", 16) for backbone in BACKBONES]
            + [("csn_ir", inter, "Refine3d", 128 if inter == "ASPP" else 16)
               for inter in INTER_BLOCKS if inter != "GC3d"]
            + [("csn_ir", "GC3d", refine, 32 if refine == "Refine3dLightGN" else 16)
               for refine in REFINE_BLOCKS if refine != "Refine3d"])
IDS = [f"{backbone}-{inter}-{refine}" for backbone, inter, refine, _ in VARIANTS]


def build(backbone="csn_ir", inter="GC3d", refine="Refine3d", decoder_width=16, depths=(1, 1, 1, 1),
          width=8):
    return build_model(ModelConfig(depths=list(depths), width=width, decoder_width=decoder_width, bn_mode="train",
                                   pixel_mean=list(PIXEL_MEAN), backbone=backbone, inter_block=inter,
                                   refine_block=refine))
