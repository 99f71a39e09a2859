"""Weight files for the weight tests: tiny models, random state dicts, and backbone files in
every published format whose source names are written out here by rules independent of the
library's key tables, so that a wrong table entry fails a test."""

import pickle
import re
from collections import OrderedDict
from pathlib import Path

import torch

from network import build_model
from network.csn import csn_ir
from utils.config import ModelConfig


DEPTHS = (1, 2, 1, 1)  # layer2 has two blocks, so caffe2's global block index != index in stage
WIDTH, DECODER_WIDTH = 8, 16
PIXEL_MEAN = (114.7748, 107.7354, 99.4750)
BN_SUFFIXES = {"weight": "s", "bias": "b", "running_mean": "rm", "running_var": "riv"}


def tiny_model(depths=DEPTHS, decoder_width=DECODER_WIDTH, **variant):
    return build_model(ModelConfig(depths=list(depths), width=WIDTH, decoder_width=decoder_width, bn_mode="train",
                                   pixel_mean=list(PIXEL_MEAN), **variant))


def tiny_encoder(depths=DEPTHS, backbone=csn_ir):
    return backbone(depths=depths, width=WIDTH, pixel_mean=PIXEL_MEAN)


def random_like(state: dict, seed: int) -> OrderedDict:
    """Random tensors with the names, shapes and dtypes of `state`."""
    generator = torch.Generator().manual_seed(seed)
    result = OrderedDict()
    for key, value in state.items():
        if value.dtype == torch.long:
            result[key] = torch.randint(1, 1000, value.shape, generator=generator)
        else:
            result[key] = torch.randn(value.shape, generator=generator)
    return result


def assert_state_equals(actual: dict, expected: dict) -> None:
    assert sorted(actual) == sorted(expected)
    for key, value in actual.items():
        assert torch.equal(value, expected[key]), key


def original_checkpoint(state: dict, multi_gpu: bool = False) -> dict:
    """An original 3DC-Seg training checkpoint holding our tensors `state` (SPEC §5.1)."""
    noise = torch.Generator().manual_seed(99)
    model = OrderedDict()
    model["encoder.conv1_p.weight"] = torch.randn(WIDTH, 1, 7, 7, 7, generator=noise)
    for key, value in state.items():
        if key.startswith(("encoder.conv1.", "encoder.layer")):
            model["encoder.resnet." + key.removeprefix("encoder.")] = value
        elif key.startswith("encoder.bn1."):  # a stale, different copy after SyncBN conversion
            model["encoder.resnet." + key.removeprefix("encoder.")] = value + 1
    features = state["encoder.layer4.0.downsample.0.weight"].shape[0]
    model["encoder.resnet.fc.weight"] = torch.randn(400, features, generator=noise)
    model["encoder.resnet.fc.bias"] = torch.randn(400, generator=noise)
    model.update(state)
    for head in ("pred3", "pred4", "pred5"):
        for field in ("weight", "bias"):
            reference = state[f"decoders.0.pred2.{field}"]
            model[f"decoders.0.{head}.{field}"] = torch.randn(reference.shape, generator=noise)
    if multi_gpu:
        model = OrderedDict(("module." + key, value) for key, value in model.items())
    return {"epoch": 4, "iter": 1234, "model": model, "optimizer": {"state": {}, "param_groups": []}}


# ----- backbone files, named by hand -------------------------------------------------------

VMZ_PYTORCH_RULES = [(r"^conv1\.", "stem.0."), (r"^bn1\.", "stem.1."),
                     (r"\.conv(\d)\.weight$", r".conv\1.0.weight"), (r"\.bn(\d)\.", r".conv\1.1.")]
MMACTION2_RULES = [(r"^conv1\.weight$", "conv1.conv.weight"), (r"^bn1\.", "conv1.bn."),
                   (r"\.conv2\.weight$", ".conv2.0.conv.weight"), (r"\.bn2\.", ".conv2.0.bn."),
                   (r"\.conv([13])\.weight$", r".conv\1.conv.weight"), (r"\.bn([13])\.", r".conv\1.bn."),
                   (r"\.downsample\.0\.", ".downsample.conv."), (r"\.downsample\.1\.", ".downsample.bn.")]
# ip-CSN block modules in VMZ's PyTorch port (IPConv3DDepthwise) and in mmaction2 (bottleneck_mode ip)
IP_BLOCK_NAMES = {
    "vmz_pytorch": {"conv1": "conv1.0", "bn1": "conv1.1", "conv2": "conv2.0.0", "bn2": "conv2.0.1",
                    "conv3": "conv2.0.2", "bn3": "conv2.1", "conv4": "conv3.0", "bn4": "conv3.1"},
    "mmaction2": {"conv1": "conv1.conv", "bn1": "conv1.bn", "conv2": "conv2.0.conv", "bn2": "conv2.0.bn",
                  "conv3": "conv2.1.conv", "bn3": "conv2.1.bn", "conv4": "conv3.conv", "bn4": "conv3.bn"},
}


def renamed(key: str, rules) -> str:
    for pattern, replacement in rules:
        key = re.sub(pattern, replacement, key)
    return key


def renamed_for(fmt: str, key: str, block: str) -> str:
    """An encoder key in the naming of `fmt` (vmz_pytorch or mmaction2, without prefix)."""
    rules = VMZ_PYTORCH_RULES if fmt == "vmz_pytorch" else MMACTION2_RULES
    match = re.fullmatch(r"(layer\d\.\d+)\.((?:conv|bn)\d)\.(.+)", key)
    if block == "ip" and match:
        return f"{match[1]}.{IP_BLOCK_NAMES[fmt][match[2]]}.{match[3]}"
    return renamed(key, rules)


def caffe2_blob_name(key: str, depths, block: str = "ir") -> str | None:
    """VMZ caffe2 blob of an ir- or ip-CSN encoder tensor (SPEC §5.4); None for
    num_batches_tracked."""
    *module, field = key.split(".")
    if field == "num_batches_tracked":
        return None
    if module == ["conv1"]:
        return "conv1_w"
    if module == ["bn1"]:
        return f"conv1_spatbn_relu_{BN_SUFFIXES[field]}"
    stage, position, part = int(module[0].removeprefix("layer")), int(module[1]), ".".join(module[2:])
    index = sum(depths[:stage - 1]) + position
    convs = {"conv1": f"comp_{index}_conv_1", "conv2": f"comp_{index}_conv_3",
             "conv3": f"comp_{index}_conv_4", "downsample.0": f"shortcut_projection_{index}"}
    norms = {"bn1": f"comp_{index}_spatbn_1", "bn2": f"comp_{index}_spatbn_3",
             "bn3": f"comp_{index}_spatbn_4", "downsample.1": f"shortcut_projection_{index}_spatbn"}
    if block == "ip":
        convs.update(conv2=f"comp_{index}_conv_2_middle", conv3=f"comp_{index}_conv_2",
                     conv4=f"comp_{index}_conv_3")
        norms.update(bn2=f"comp_{index}_spatbn_2_middle", bn3=f"comp_{index}_spatbn_2",
                     bn4=f"comp_{index}_spatbn_3")
    return convs[part] + "_w" if part in convs else f"{norms[part]}_{BN_SUFFIXES[field]}"


def encoder_weights(depths=DEPTHS, seed=3, backbone=csn_ir) -> OrderedDict:
    """Random encoder tensors under our names, without the mean/std buffers."""
    state = random_like(tiny_encoder(depths, backbone).state_dict(), seed)
    del state["mean"], state["std"]
    return state


def backbone_file_object(fmt: str, weights: dict, depths=DEPTHS, block: str = "ir"):
    head = {"weight": torch.randn(400, 32 * WIDTH), "bias": torch.randn(400)}
    if fmt == "3dcseg":
        return OrderedDict(weights, **{"fc.weight": head["weight"], "fc.bias": head["bias"]})
    if fmt == "vmz_pytorch":
        state = OrderedDict((renamed_for(fmt, key, block), value) for key, value in weights.items())
        return OrderedDict(state, **{"fc.weight": head["weight"], "fc.bias": head["bias"]})
    if fmt == "mmaction2":
        state = OrderedDict(("backbone." + renamed_for(fmt, key, block), value)
                            for key, value in weights.items())
        state["cls_head.fc_cls.weight"], state["cls_head.fc_cls.bias"] = head["weight"], head["bias"]
        return {"meta": {"mmcv_version": "1.3.0", "epoch": 58}, "state_dict": state}
    blobs = {caffe2_blob_name(key, depths, block): value.numpy() for key, value in weights.items()
             if caffe2_blob_name(key, depths, block)}
    blobs["last_out_L400_w"], blobs["last_out_L400_b"] = head["weight"].numpy(), head["bias"].numpy()
    return {"blobs": blobs}


def write_backbone_file(path: Path, fmt: str, weights: dict, depths=DEPTHS, protocol=None,
                        block: str = "ir") -> Path:
    obj = backbone_file_object(fmt, weights, depths, block)
    if fmt == "vmz_caffe2":
        with path.open("wb") as handle:
            pickle.dump(obj, handle, protocol=protocol)
    else:
        torch.save(obj, path)
    return path


def expected_encoder_state(fmt: str, weights: dict) -> dict:
    """What the encoder must hold after loading: the file's tensors, the configured mean/std,
    and num_batches_tracked = 0 where the format does not store it (caffe2)."""
    fresh = tiny_encoder((1, 1, 1, 1)).state_dict()
    expected = OrderedDict(weights, mean=fresh["mean"], std=fresh["std"])
    if fmt == "vmz_caffe2":
        for key in expected:
            if key.endswith("num_batches_tracked"):
                expected[key] = torch.tensor(0)
    return expected
