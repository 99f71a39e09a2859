import pytest
import torch

from network import build_model
from utils.config import ModelConfig, load_config

from support.paths import REPO_ROOT, TINY_CONFIG


MEAN = (114.7748, 107.7354, 99.4750)
BN_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def expected_original_keys(depths=(3, 8, 36, 3), width=64, mdim=256, classes=2) -> dict:
    """Canonical entries of STATE_DICT.md (encoder.X names, decoders.0.*, no pred3-5, no
    encoder.resnet aliases, no fc, no conv1_p), expanded from its key patterns."""
    keys = {"encoder.mean": (1, 3, 1, 1, 1), "encoder.std": (1, 3, 1, 1, 1),
            "encoder.conv1.weight": (width, 3, 3, 7, 7)}

    def bn(prefix, channels):
        for key in BN_KEYS:
            keys[f"{prefix}.{key}"] = () if key == "num_batches_tracked" else (channels,)

    bn("encoder.bn1", width)
    in_channels = width
    for stage, depth in enumerate(depths):
        planes = width * 2 ** stage
        for block in range(depth):
            prefix = f"encoder.layer{stage + 1}.{block}"
            keys[f"{prefix}.conv1.weight"] = (planes, in_channels, 1, 1, 1)
            keys[f"{prefix}.conv2.weight"] = (planes, 1, 3, 3, 3)
            keys[f"{prefix}.conv3.weight"] = (4 * planes, planes, 1, 1, 1)
            bn(f"{prefix}.bn1", planes), bn(f"{prefix}.bn2", planes), bn(f"{prefix}.bn3", 4 * planes)
            if block == 0:
                keys[f"{prefix}.downsample.0.weight"] = (4 * planes, in_channels, 1, 1, 1)
                bn(f"{prefix}.downsample.1", 4 * planes)
            in_channels = 4 * planes
    c5 = in_channels
    gc = {"conv_l1": (mdim, c5, 1, 7, 1), "conv_l2": (mdim, mdim, 1, 1, 7),
          "conv_r1": (mdim, c5, 1, 1, 7), "conv_r2": (mdim, mdim, 1, 7, 1)}
    for name, shape in gc.items():
        keys[f"decoders.0.GC.{name}.weight"], keys[f"decoders.0.GC.{name}.bias"] = shape, (mdim,)
    for name in ("convG1", "convG2"):
        keys[f"decoders.0.{name}.weight"], keys[f"decoders.0.{name}.bias"] = (mdim, mdim, 3, 3, 3), (mdim,)
    for name, skip in (("RF4", c5 // 2), ("RF3", c5 // 4), ("RF2", c5 // 8)):
        for conv in ("convFS1", "convFS2", "convFS3", "convMM1", "convMM2"):
            in_c = skip if conv == "convFS1" else mdim
            keys[f"decoders.0.{name}.{conv}.weight"] = (mdim, in_c, 3, 3, 3)
            keys[f"decoders.0.{name}.{conv}.bias"] = (mdim,)
    keys["decoders.0.pred2.weight"], keys["decoders.0.pred2.bias"] = (classes, mdim, 3, 3, 3), (classes,)
    return keys


def test_full_size_model_matches_state_dict_reference():
    cfg = load_config(REPO_ROOT / "run_configs" / "bmvc_final.yaml")
    model = build_model(cfg.model)
    ours = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    assert ours == expected_original_keys()
    assert len(ours) == 976  # 1915 original entries - 930 aliases - fc (2) - conv1_p - pred3..5 (6)
    assert sum(p.numel() for p in model.parameters()) == 75_202_648 - 819_600 - 21_952 - 3 * 13_826


def tiny(bn_mode="train"):
    return build_model(ModelConfig(depths=[1, 1, 1, 1], width=8, decoder_width=16, bn_mode=bn_mode,
                                   pixel_mean=list(MEAN)))


def test_tiny_forward_shapes_and_feature_strides():
    model = tiny().eval()
    clip = torch.rand(1, 3, 8, 64, 96)
    r5, r4, r3, r2 = model.encoder(clip)
    assert r2.shape == (1, 32, 8, 16, 24) and r3.shape == (1, 64, 4, 8, 12)
    assert r4.shape == (1, 128, 2, 4, 6) and r5.shape == (1, 256, 1, 2, 3)
    assert model(clip).shape == (1, 2, 8, 64, 96)


def test_normalisation_subtracts_mean_over_255_without_std():
    model = tiny()
    seen = {}
    model.encoder.conv1.register_forward_hook(lambda module, inputs, output: seen.update(x=inputs[0]))
    clip = torch.rand(1, 3, 8, 32, 32)
    model.eval()(clip)
    expected = clip - torch.tensor(MEAN).view(1, 3, 1, 1, 1) / 255
    assert torch.allclose(seen["x"], expected, atol=1e-6)


def test_frozen_bn_stays_in_eval_mode_and_has_no_gradient():
    model = tiny("frozen").train()
    batch_norms = [m for m in model.encoder.modules() if isinstance(m, torch.nn.BatchNorm3d)]
    assert batch_norms and all(not m.training for m in batch_norms)
    assert all(not m.weight.requires_grad for m in batch_norms)
    before = batch_norms[0].running_mean.clone()
    model(torch.rand(2, 3, 8, 32, 32))
    assert torch.equal(before, batch_norms[0].running_mean)


def test_trainable_bn_updates_running_statistics():
    model = tiny("train").train()
    bn = model.encoder.bn1
    before = bn.running_mean.clone()
    model(torch.rand(2, 3, 8, 32, 32))
    assert bn.training and bn.weight.requires_grad and not torch.equal(before, bn.running_mean)


@pytest.mark.parametrize("frames", [4, 8, 16])
def test_output_keeps_clip_length(frames):
    assert tiny().eval()(torch.rand(1, 3, frames, 32, 32)).shape == (1, 2, frames, 32, 32)


def test_build_model_from_tiny_config():
    model = build_model(load_config(TINY_CONFIG).model)
    assert model.encoder.conv1.out_channels == 8 and len(model.encoder.layer3) == 1


# ----- encoder initialisation (model.encoder_init) -----------------------------------------

def encoder(backbone, encoder_init, width=16):
    from network import BACKBONES
    torch.manual_seed(0)
    return BACKBONES[backbone]((1, 1, 1, 1), width, 1e-5, MEAN, (1.0, 1.0, 1.0), conv_init=encoder_init)


def test_he_init_counts_the_kernel_width_and_original_leaves_it_out():
    he, original = encoder("resnet", "he"), encoder("resnet", "original")
    he_std = he.layer4[0].conv2.weight.std().item()  # (128, 128, 3, 3, 3)
    original_std = original.layer4[0].conv2.weight.std().item()
    assert he_std == pytest.approx((2 / (3 * 3 * 3 * 128)) ** 0.5, rel=0.02)
    assert original_std == pytest.approx((2 / (3 * 3 * 128)) ** 0.5, rel=0.02)
    stem = original.conv1.weight  # the 7x7x7 ResNet stem gets the formula too
    assert stem.std().item() == pytest.approx((2 / (7 * 7 * 16)) ** 0.5, rel=0.05)


def test_original_init_keeps_pytorch_default_for_the_csn_stem():
    fan_in = 3 * 3 * 7 * 7
    bound = 1 / fan_in ** 0.5  # kaiming_uniform(a=sqrt(5)): uniform in [-1/sqrt(fan_in), 1/sqrt(fan_in)]
    for backbone in ("csn_ir", "csn_ip"):
        assert encoder(backbone, "original").conv1.weight.abs().max().item() <= bound
        assert encoder(backbone, "he").conv1.weight.abs().max().item() > bound
        depthwise = encoder(backbone, "original").layer4[0].get_submodule("conv2" if backbone == "csn_ir" else "conv3")
        assert depthwise.weight.std().item() == pytest.approx((2 / (3 * 3 * 128)) ** 0.5, rel=0.05)


def test_encoder_batch_norm_starts_at_one_and_zero():
    for batch_norm in (m for m in encoder("csn_ip", "original").modules() if isinstance(m, torch.nn.BatchNorm3d)):
        assert torch.equal(batch_norm.weight, torch.ones_like(batch_norm.weight))
        assert torch.equal(batch_norm.bias, torch.zeros_like(batch_norm.bias))


def original_bottleneck_forward(block, x, ip: bool):
    """The original blocks written out (SPEC §4.3): ReLU after the reduce and the depthwise (or
    full) 3x3x3 convolution, none after ip-CSN's extra 1x1x1 nor after the expand."""
    out = block.relu(block.bn1(block.conv1(x)))
    if ip:
        out = block.bn2(block.conv2(out))
        out = block.relu(block.bn3(block.conv3(out)))
        out = block.bn4(block.conv4(out))
    else:
        out = block.relu(block.bn2(block.conv2(out)))
        out = block.bn3(block.conv3(out))
    return block.relu(out + block.downsample(x))


@pytest.mark.parametrize("backbone", ["csn_ir", "csn_ip", "resnet"])
def test_bottleneck_forward_is_the_original_blocks(backbone):
    torch.manual_seed(0)
    block = encoder(backbone, "he").layer2[0].eval()
    for batch_norm in (m for m in block.modules() if isinstance(m, torch.nn.BatchNorm3d)):
        batch_norm.bias.data.normal_()  # negative pre-activations: a missing or extra ReLU shows
        batch_norm.running_mean.normal_()
    x = torch.randn(1, block.conv1.in_channels, 4, 8, 8)
    with torch.no_grad():
        assert torch.equal(block(x), original_bottleneck_forward(block, x, ip=backbone == "csn_ip"))
