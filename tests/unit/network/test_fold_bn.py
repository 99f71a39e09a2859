"""BatchNorm folded into the convolution before it (network/fold_bn.py) and the engine's other
preparation of the network it owns (inference_handlers/inference/backends.prepare_model): the same outputs
on every model variant, nothing folded that must not be, and the training network untouched by
validation."""

import copy
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from datasets import index_sequences
from inference_handlers.inference.backends import FROZEN_CPU_COMPILE, compile_network, prepare_model
from network.fold_bn import fold_batchnorm
from tasks.train import prepare
from tasks.train import validate as validate_epoch
from utils.config import InferenceConfig, load_config

from support.data_trees import write_mini_davis
from support.paths import TINY_CONFIG
from support.variants import IDS, VARIANTS, build


CPU = torch.device("cpu")


def with_statistics(model: nn.Module, seed: int = 0) -> nn.Module:
    """Running statistics and affine parameters far from the identity, so a wrong fold shows."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, _BatchNorm) and module.track_running_stats:
            size = module.num_features
            module.running_mean.copy_(torch.rand(size, generator=generator) - 0.5)
            module.running_var.copy_(torch.rand(size, generator=generator) * 1.5 + 0.5)
            module.weight.data.copy_(torch.rand(size, generator=generator) + 0.5)
            module.bias.data.copy_(torch.rand(size, generator=generator) * 0.4 - 0.2)
    return model.eval()


def batchnorms(model: nn.Module) -> int:
    return sum(isinstance(module, _BatchNorm) for module in model.modules())


@pytest.mark.parametrize("backbone, inter, refine, decoder_width", VARIANTS, ids=IDS)
def test_folded_network_computes_the_unfolded_one_on_every_variant(backbone, inter, refine, decoder_width):
    torch.manual_seed(0)
    model = with_statistics(build(backbone, inter, refine, decoder_width))
    folded = copy.deepcopy(model)
    count = fold_batchnorm(folded)
    clip = torch.rand(1, 3, 8, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, actual = model(clip), folded(clip)
    assert count == batchnorms(model) > 0 and batchnorms(folded) == 0  # every BatchNorm follows a convolution
    assert torch.allclose(actual, expected, rtol=0, atol=1e-4)


@pytest.mark.parametrize("backbone, inter, refine, decoder_width", VARIANTS, ids=IDS)
def test_bf16_weights_stored_once_give_what_autocast_gives(backbone, inter, refine, decoder_width):
    torch.manual_seed(0)
    model = with_statistics(build(backbone, inter, refine, decoder_width))
    prepared = prepare_model(copy.deepcopy(model), InferenceConfig(precision="bf16", fold_bn=False, channels_last=False), CPU,
                             live_network=False)
    clip = torch.rand(1, 3, 8, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        expected, actual = model(clip), prepared(clip)
    assert prepared.encoder.conv1.weight.dtype == torch.bfloat16
    assert torch.equal(actual, expected)


def test_batchnorm_after_a_nonlinearity_and_groupnorm_stay():
    torch.manual_seed(0)
    model = with_statistics(nn.Sequential(
        nn.Conv3d(3, 4, 1), nn.ReLU(), nn.BatchNorm3d(4),          # a ReLU between: not foldable
        nn.Conv3d(4, 4, 1), nn.GroupNorm(2, 4),                     # GroupNorm: per sample, left alone
        nn.ConvTranspose3d(4, 4, 1), nn.BatchNorm3d(4),             # transposed: left alone
        nn.Conv3d(4, 4, 1), nn.BatchNorm3d(4, track_running_stats=False),  # no statistics to fold
        nn.Conv3d(4, 4, 1), nn.BatchNorm3d(4)))                     # the one foldable pair
    folded = copy.deepcopy(model)
    assert fold_batchnorm(folded) == 1
    assert [type(module).__name__ for module in folded] == [
        "Conv3d", "ReLU", "BatchNorm3d", "Conv3d", "GroupNorm", "ConvTranspose3d", "BatchNorm3d",
        "Conv3d", "BatchNorm3d", "Conv3d", "Identity"]
    clip = torch.rand(2, 3, 2, 4, 4, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(folded(clip), model(clip), rtol=0, atol=1e-5)


def test_an_owned_network_is_folded_and_a_live_one_kept():
    torch.manual_seed(0)
    settings = InferenceConfig(precision="bf16")
    owned = prepare_model(build(), settings, CPU, live_network=False)
    live = build()
    before = {name: tensor.clone() for name, tensor in live.state_dict().items()}
    prepare_model(live, settings, CPU, live_network=True)
    assert batchnorms(owned) == 0 and owned.encoder.conv1.weight.dtype == torch.bfloat16
    assert batchnorms(live) == batchnorms(build()) and all(
        torch.equal(tensor, before[name]) for name, tensor in live.state_dict().items())


def test_only_an_owned_network_on_a_cpu_is_frozen_when_compiled(monkeypatch):
    calls = []
    monkeypatch.setattr(torch, "compile", lambda model, options=None: calls.append(options))
    compile_network(nn.Identity(), CPU, live_network=False)
    compile_network(nn.Identity(), CPU, live_network=True)
    compile_network(nn.Identity(), torch.device("cuda"), live_network=False)
    assert calls == [FROZEN_CPU_COMPILE, None, None] and FROZEN_CPU_COMPILE["freezing"] is True


def test_validation_during_training_leaves_the_training_network_as_it_was(tmp_path):
    data_root = write_mini_davis(tmp_path / "DAVIS", num_frames=8, height=32, width=64)
    cfg = load_config(TINY_CONFIG, [f"data.train_root={data_root}", f"data.test_root={data_root}",
                                    "inference.precision=bf16", "model.bn_mode=frozen"])
    training = prepare(cfg, SimpleNamespace(device=CPU, model_dir=tmp_path / "run"), None)
    network = training.network
    before = {name: (tensor.clone(), tensor.dtype) for name, tensor in network.state_dict().items()}
    summary = validate_epoch(training.engine, index_sequences(cfg.data, "test"), cfg, None, epoch=1,
                             stop=SimpleNamespace(received=None))
    assert summary is not None and batchnorms(network) > 0
    after = network.state_dict()
    assert after.keys() == before.keys()
    assert all(torch.equal(after[name], value) and after[name].dtype == dtype for name, (value, dtype) in before.items())
