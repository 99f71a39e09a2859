"""Pretrained backbone files in the four published layouts, named onto our `Encoder3d`.

ir-CSN and ip-CSN files come in all four layouts; the 3D ResNets (bottleneck and basic blocks)
only in ours (`3dcseg`, the names of the original's Resnet3d.py). `source_block` tells the block
kind from a file's keys, and `BLOCK_BACKBONES` names the `model.backbone` that holds it.

Format names (what `detect_backbone_format` reports):

* ``3dcseg``: the bare state dict that 3DC-Seg ships, `irCSN_152_ft_kinetics_from_ig65m_f126851907.pth`
  (SPEC §5.3): 932 tensors named like our encoder, plus the Kinetics head `fc.weight`/`fc.bias`.
  `python -m checkpoints.convert` writes the same layout without the head.
* ``vmz_caffe2``: a VMZ caffe2 model-zoo pickle `{"blobs": {name: numpy array}}` (SPEC §5.4,
  FORMATS §6.2). Blocks are numbered globally over all stages (stage starts 0, 3, 11, 47 for
  CSN-152). ir: the depthwise conv is `conv_3`, not `conv_2` (VMZ numbering); ip: `conv_1`,
  `conv_2_middle` (the extra 1x1x1), `conv_2` (depthwise), `conv_3` (expand).
* ``vmz_pytorch``: the VMZ PyTorch port, a torchvision `VideoResNet` state dict (`stem.0`,
  `layerX.Y.conv1.0`, ...). Checked against `facebookresearch/VMZ:pt/vmz/models/{csn,utils}.py`
  and torchvision's `VideoResNet`/`Bottleneck` (same 932 names). ip: VMZ's `IPConv3DDepthwise`
  makes `conv2.0` a sequence of 1x1x1 (`conv2.0.0`), BatchNorm (`conv2.0.1`) and depthwise
  (`conv2.0.2`) convolutions.
* ``mmaction2``: an mmaction2 `ResNet3dCSN` (ir) checkpoint. Names checked against
  `open-mmlab/mmaction2:mmaction/models/backbones/resnet3d_csn.py` and `resnet3d.py`: every conv
  is an mmcv `ConvModule` holding `conv` and `bn` (mmcv names BatchNorm layers "bn"); the stem
  is `conv1`; the ir block's depthwise conv is wrapped in an `nn.Sequential`, hence
  `conv2.0.conv` / `conv2.0.bn`; the projection shortcut is a `ConvModule` named `downsample`.
  Recognizer checkpoints `{"state_dict", "meta"}` prefix the backbone with `backbone.` and hold
  the head `cls_head.fc_cls.{weight,bias}` (`I3DHead`); a backbone-only file (no prefix) is
  accepted as well. ip (`bottleneck_mode='ip'`): `conv2.0` is the extra 1x1x1 `ConvModule` and
  `conv2.1` the depthwise one.

Each format has an explicit table from our encoder key to exactly one source key. Classifier
heads and the caffe2 training leftovers in `CAFFE2_EXTRA_BLOBS` (plus `<blob>_momentum` for
every blob in the table) are ignored by name; any other key is an error.

`num_batches_tracked` is taken from the file when it has it; caffe2 blobs have none, and it is
then set to 0 (it only matters for BatchNorm with momentum=None, which we do not use).
BatchNorm epsilon is not stored in any of these files: the caffe2, VMZ and mmaction2 weights were
trained with eps 1e-3, while 3DC-Seg runs them with 1e-5 (config `model.bn_eps`).

Files are read by `checkpoints.files.read_weight_file` (caffe2 pickles with an unpickler that only
builds numpy arrays).
"""

import re
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch

from utils.errors import UserError

BACKBONE_FORMATS = ("3dcseg", "vmz_caffe2", "vmz_pytorch", "mmaction2")

# Our stem modules -> the source module, per format.
STEM_NAMES = {
    "3dcseg": {"conv1": "conv1", "bn1": "bn1"},
    "vmz_caffe2": {"conv1": "conv1", "bn1": "conv1_spatbn_relu"},
    "vmz_pytorch": {"conv1": "stem.0", "bn1": "stem.1"},
    "mmaction2": {"conv1": "conv1.conv", "bn1": "conv1.bn"},
}

# Block kinds: ir / ip = channel-separated bottlenecks (network/csn.py), bottleneck / basic =
# the 3D ResNet blocks (network/resnet3d.py); the `model.backbone` that has each, and its title.
BLOCK_BACKBONES = {"ir": "csn_ir", "ip": "csn_ip", "bottleneck": "resnet", "basic": "resnet_basic"}
BLOCK_TITLES = {"ir": "ir-CSN", "ip": "ip-CSN", "bottleneck": "3D ResNet (bottleneck)",
                "basic": "3D ResNet (basic blocks)"}

# Our block modules -> the source module, per format and block kind; {p} = "layer{L}.{b}",
# {i} = global block index. `downsample.*` exists only in the first block of each stage.
SHORTCUT_NAMES = {
    "3dcseg": {"downsample.0": "{p}.downsample.0", "downsample.1": "{p}.downsample.1"},
    "vmz_caffe2": {"downsample.0": "shortcut_projection_{i}", "downsample.1": "shortcut_projection_{i}_spatbn"},
    "vmz_pytorch": {"downsample.0": "{p}.downsample.0", "downsample.1": "{p}.downsample.1"},
    "mmaction2": {"downsample.0": "{p}.downsample.conv", "downsample.1": "{p}.downsample.bn"},
}
BLOCK_NAMES = {
    "3dcseg": {
        "ir": {"conv1": "{p}.conv1", "bn1": "{p}.bn1", "conv2": "{p}.conv2", "bn2": "{p}.bn2",
               "conv3": "{p}.conv3", "bn3": "{p}.bn3"},
        "ip": {"conv1": "{p}.conv1", "bn1": "{p}.bn1", "conv2": "{p}.conv2", "bn2": "{p}.bn2",
               "conv3": "{p}.conv3", "bn3": "{p}.bn3", "conv4": "{p}.conv4", "bn4": "{p}.bn4"},
        "bottleneck": {"conv1": "{p}.conv1", "bn1": "{p}.bn1", "conv2": "{p}.conv2", "bn2": "{p}.bn2",
                       "conv3": "{p}.conv3", "bn3": "{p}.bn3"},
        "basic": {"conv1": "{p}.conv1", "bn1": "{p}.bn1", "conv2": "{p}.conv2", "bn2": "{p}.bn2"},
    },
    "vmz_caffe2": {
        "ir": {"conv1": "comp_{i}_conv_1", "bn1": "comp_{i}_spatbn_1",
               "conv2": "comp_{i}_conv_3", "bn2": "comp_{i}_spatbn_3",
               "conv3": "comp_{i}_conv_4", "bn3": "comp_{i}_spatbn_4"},
        "ip": {"conv1": "comp_{i}_conv_1", "bn1": "comp_{i}_spatbn_1",
               "conv2": "comp_{i}_conv_2_middle", "bn2": "comp_{i}_spatbn_2_middle",
               "conv3": "comp_{i}_conv_2", "bn3": "comp_{i}_spatbn_2",
               "conv4": "comp_{i}_conv_3", "bn4": "comp_{i}_spatbn_3"},
    },
    "vmz_pytorch": {
        "ir": {"conv1": "{p}.conv1.0", "bn1": "{p}.conv1.1", "conv2": "{p}.conv2.0", "bn2": "{p}.conv2.1",
               "conv3": "{p}.conv3.0", "bn3": "{p}.conv3.1"},
        "ip": {"conv1": "{p}.conv1.0", "bn1": "{p}.conv1.1", "conv2": "{p}.conv2.0.0", "bn2": "{p}.conv2.0.1",
               "conv3": "{p}.conv2.0.2", "bn3": "{p}.conv2.1", "conv4": "{p}.conv3.0", "bn4": "{p}.conv3.1"},
    },
    "mmaction2": {
        "ir": {"conv1": "{p}.conv1.conv", "bn1": "{p}.conv1.bn", "conv2": "{p}.conv2.0.conv",
               "bn2": "{p}.conv2.0.bn", "conv3": "{p}.conv3.conv", "bn3": "{p}.conv3.bn"},
        "ip": {"conv1": "{p}.conv1.conv", "bn1": "{p}.conv1.bn", "conv2": "{p}.conv2.0.conv",
               "bn2": "{p}.conv2.0.bn", "conv3": "{p}.conv2.1.conv", "bn3": "{p}.conv2.1.bn",
               "conv4": "{p}.conv3.conv", "bn4": "{p}.conv3.bn"},
    },
}
# A key that only ip-CSN files of each format have (first block of layer1; after the prefix).
IP_MARKERS = {"3dcseg": "layer1.0.conv4.weight", "vmz_caffe2": "comp_0_conv_2_middle_w",
              "vmz_pytorch": "layer1.0.conv2.0.0.weight", "mmaction2": "layer1.0.conv2.1.conv.weight"}

MODULE_KINDS = {"conv1": "conv", "bn1": "bn", "conv2": "conv", "bn2": "bn", "conv3": "conv",
                "bn3": "bn", "conv4": "conv", "bn4": "bn", "downsample.0": "conv", "downsample.1": "bn"}

# Our tensor name -> suffix of the source key (None: the format does not store it).
TORCH_FIELDS = {
    "conv": {"weight": ".weight"},
    "bn": {"weight": ".weight", "bias": ".bias", "running_mean": ".running_mean",
           "running_var": ".running_var", "num_batches_tracked": ".num_batches_tracked"},
}
CAFFE2_FIELDS = {
    "conv": {"weight": "_w"},
    # s = scale (gamma), b = bias (beta), rm = running mean, riv = running variance (not inverted)
    "bn": {"weight": "_s", "bias": "_b", "running_mean": "_rm", "running_var": "_riv",
           "num_batches_tracked": None},
}
OPTIONAL_FIELD = "num_batches_tracked"

IGNORED_KEYS = {
    "3dcseg": {"fc.weight", "fc.bias"},
    "vmz_caffe2": set(),
    "vmz_pytorch": {"fc.weight", "fc.bias"},
    "mmaction2": {"cls_head.fc_cls.weight", "cls_head.fc_cls.bias"},
}
CAFFE2_HEAD = re.compile(r"last_out_L\d+_[wb]")  # Kinetics-400 / Sports-1M / IG-65M class heads
# Training state a caffe2 pickle may carry besides the weights (VMZ's minidb_to_pickle.py saves
# only the predict net's inputs, but checkpoints written during training hold these too).
CAFFE2_EXTRA_BLOBS = {"model_iter", "lr"}
CAFFE2_MOMENTUM_SUFFIX = "_momentum"

# How each format is recognised: (format, key prefix, a key only that format has).
FORMAT_MARKERS = (
    ("3dcseg", "", "layer1.0.conv1.weight"),
    ("vmz_pytorch", "", "stem.0.weight"),
    ("mmaction2", "backbone.", "conv1.conv.weight"),
    ("mmaction2", "", "conv1.conv.weight"),
)

@dataclass
class BackboneSource:
    """The tensors of a recognised backbone file: `prefix` + name -> array or tensor."""
    format: str
    tensors: dict
    prefix: str = ""

    @property
    def block(self) -> str:
        """The block kind the file holds (a key of BLOCK_BACKBONES)."""
        return source_block(self)


def detect_backbone_format(obj) -> BackboneSource | None:
    """Recognise a loaded backbone file by its keys; None if it is none of the four formats."""
    if isinstance(obj, dict) and isinstance(obj.get("blobs"), dict):
        return BackboneSource("vmz_caffe2", obj["blobs"])
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]  # mmcv / mmengine checkpoint
    if not isinstance(obj, dict):
        return None
    for name, prefix, marker in FORMAT_MARKERS:
        if getattr(obj.get(prefix + marker), "ndim", 0) == 5:  # a 3D convolution's weight
            return BackboneSource(name, obj, prefix)
    return None


def block_layout(depths) -> list[tuple[str, int, bool]]:
    """("layer{L}.{b}", global block index, first block of its stage) for every block."""
    layout, index = [], 0
    for stage, depth in enumerate(depths):
        for block in range(depth):
            layout.append((f"layer{stage + 1}.{block}", index, block == 0))
            index += 1
    return layout


def source_block(source: BackboneSource) -> str:
    """ip when the file has its format's ip-only key; in our layout, basic without `conv3` and
    bottleneck when `conv2` is a full convolution; ir otherwise."""
    tensors, prefix = source.tensors, source.prefix
    if prefix + IP_MARKERS[source.format] in tensors:
        return "ip"
    if source.format != "3dcseg":
        return "ir"
    if prefix + "layer1.0.conv3.weight" not in tensors:
        return "basic"
    middle = getattr(tensors.get(prefix + "layer1.0.conv2.weight"), "shape", (0, 1))
    return "ir" if middle[1] == 1 else "bottleneck"


def backbone_key_table(fmt: str, depths, prefix: str = "", block: str = "ir") -> dict[str, str | None]:
    """Our encoder key (e.g. `layer2.0.bn1.weight`) -> source key in `fmt` (None: not stored),
    for an encoder of `block` kind."""
    if block not in BLOCK_NAMES[fmt]:
        raise UserError(f"{fmt} backbone files hold CSN encoders only, not {BLOCK_TITLES[block]} "
                        f"(model.backbone {BLOCK_BACKBONES[block]})")
    modules = dict(STEM_NAMES[fmt])
    templates = dict(BLOCK_NAMES[fmt][block], **SHORTCUT_NAMES[fmt])
    for name, index, first in block_layout(depths):
        for ours, template in templates.items():
            if first or not ours.startswith("downsample"):
                modules[f"{name}.{ours}"] = template.format(p=name, i=index)
    fields = CAFFE2_FIELDS if fmt == "vmz_caffe2" else TORCH_FIELDS
    table = {}
    for ours, theirs in modules.items():
        local_name = ours.split(".", 2)[-1] if ours.startswith("layer") else ours
        for field, suffix in fields[MODULE_KINDS[local_name]].items():
            table[f"{ours}.{field}"] = None if suffix is None else prefix + theirs + suffix
    return table


def ignored_source_keys(source: BackboneSource, table: dict) -> set[str]:
    """Keys of the file that are known and deliberately not loaded."""
    ignored = set(IGNORED_KEYS[source.format])
    if source.format == "vmz_caffe2":
        ignored |= CAFFE2_EXTRA_BLOBS
        ignored |= {blob + CAFFE2_MOMENTUM_SUFFIX for blob in table.values() if blob}
        ignored |= {blob for blob in source.tensors if CAFFE2_HEAD.fullmatch(blob)}
    return ignored


def source_depths(source: BackboneSource) -> tuple[int, ...]:
    """Blocks per stage, counted from the file's keys."""
    if source.format == "vmz_caffe2":
        blocks = _caffe2_indices(source.tensors, r"comp_(\d+)_conv_1_w")
        stage_starts = sorted(_caffe2_indices(source.tensors, r"shortcut_projection_(\d+)_w"))
        ends = stage_starts[1:] + [len(blocks)]
        return tuple(end - start for start, end in zip(stage_starts, ends))
    pattern = re.compile(re.escape(source.prefix) + r"layer(\d+)\.(\d+)\.")
    depths = {}
    for key in source.tensors:
        match = pattern.match(key)
        if match:
            stage, block = int(match[1]), int(match[2])
            depths[stage] = max(depths.get(stage, 0), block + 1)
    return tuple(depths.get(stage, 0) for stage in range(1, max(depths, default=0) + 1))


def _caffe2_indices(blobs: dict, pattern: str) -> set[int]:
    return {int(match[1]) for key in blobs if (match := re.fullmatch(pattern, key))}


def source_width(source: BackboneSource) -> int:
    """Output channels of the stem convolution (64 for ir-CSN-152)."""
    key = backbone_key_table(source.format, (), source.prefix)["conv1.weight"]
    shape = getattr(source.tensors.get(key), "shape", ())
    if len(shape) != 5:
        raise UserError(f"backbone file ({source.format}) has no 5-d stem convolution '{key}'")
    return int(shape[0])


def map_backbone(source: BackboneSource, depths) -> tuple[dict, list[str], list[str]]:
    """Rename the file's tensors to our encoder keys (for the file's block kind).

    Returns (state, unknown source keys, missing source keys). A target whose source key is
    absent is left out of `state`, except `num_batches_tracked`, which is then 0.
    """
    table = backbone_key_table(source.format, depths, source.prefix, source.block)
    state, missing = OrderedDict(), []
    for target, key in table.items():
        optional = target.endswith("." + OPTIONAL_FIELD)
        if key in source.tensors:
            state[target] = as_tensor(source.tensors[key])
        elif optional:
            state[target] = torch.tensor(0, dtype=torch.long)
        else:
            missing.append(key)
    known = set(table.values()) | ignored_source_keys(source, table)
    unknown = [key for key in source.tensors if key not in known]
    return state, unknown, missing


def as_tensor(value):
    """A numeric numpy array as a (writable, contiguous) tensor; other values are returned
    unchanged (and then reported as "not a tensor" by the shape check)."""
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return torch.from_numpy(np.array(value))
    return value
