"""Network construction: one table of encoders and one `build_model(model_config)`."""

from network.csn import CSNEncoder
from network.model import SaliencyNetwork, build_saliency_network
from utils.registry import pick

BACKBONES = {"csn_ir": CSNEncoder}
BN_MODES = ("frozen", "train")


def build_model(model_config) -> SaliencyNetwork:
    """Build the 3DC-Seg network described by a `ModelConfig`."""
    pick(BACKBONES, model_config.backbone, "backbone")
    return build_saliency_network(
        depths=tuple(model_config.depths), width=model_config.width,
        decoder_width=model_config.decoder_width, num_classes=model_config.num_classes,
        bn_mode=model_config.bn_mode, bn_eps=model_config.bn_eps,
        pixel_mean=tuple(model_config.pixel_mean), pixel_std=tuple(model_config.pixel_std))
