"""Which network a state dict holds, read off its tensors, for weight files that carry no config
(original 3DC-Seg checkpoints, and ours converted from them).

The dimensions (depths, widths, classes) are counted from tensor names and shapes. The variant
(model.backbone, model.inter_block, model.refine_block) is the layout of one encoder block, the
inter block and a refine block: their tensor names, kernel sizes and which convolutions are
depthwise. A file's layout is compared with the configured model's; only where they differ is
each named, against every variant built on the meta device, for a message such as "checkpoint
has conv4 in encoder blocks (csn_ip); config builds csn_ir (model.backbone)".
"""

import functools
import re

import torch

from checkpoints.state_dicts import listing
from network import BACKBONES, INTER_BLOCKS, REFINE_BLOCKS, build_model
from utils.config import ModelConfig
from utils.errors import UserError

ENCODER_BLOCK = re.compile(r"encoder\.layer([1-4])\.(\d+)\.conv1\.weight")
# The parts that tell the variants apart: (config key, table, state-dict prefix, what it is).
VARIANT_PARTS = (
    ("backbone", BACKBONES, "encoder.layer4.0.", "encoder blocks"),
    ("inter_block", INTER_BLOCKS, "decoders.0.GC.", "decoders.0.GC"),
    ("refine_block", REFINE_BLOCKS, "decoders.0.RF4.", "the refine blocks decoders.0.RF*"),
)
# Small enough to build instantly, large enough for every block's GroupNorm (on the meta device).
PROBE_SHAPE = {"depths": [1, 1, 1, 1], "width": 32, "decoder_width": 128, "num_classes": 2}


def layout(state: dict, prefix: str) -> dict:
    """Tensor names under `prefix` (prefix removed) -> for 5-d conv weights (kernel size,
    depthwise), else the number of dimensions."""
    parts = {}
    for key, value in state.items():
        if key.startswith(prefix):
            shape = tuple(getattr(value, "shape", ()))
            parts[key[len(prefix):]] = (shape[2:], shape[1] == 1) if len(shape) == 5 else len(shape)
    return parts


@functools.cache
def reference_layouts() -> dict[str, dict[str, dict]]:
    """{config key: {variant: layout}}, from every variant built on the meta device."""
    default = {key: next(iter(table)) for key, table, _, _ in VARIANT_PARTS}
    references = {}
    for key, table, prefix, _ in VARIANT_PARTS:
        references[key] = {}
        for name in table:
            with torch.device("meta"):
                model = build_model(ModelConfig(**PROBE_SHAPE, **dict(default, **{key: name})))
            references[key][name] = layout(model.state_dict(), prefix)
    return references


def variant_named(key: str, observed: dict) -> str | None:
    """The variant of part `key` whose layout is `observed`; None if none is."""
    return next((name for name, reference in reference_layouts()[key].items() if reference == observed), None)


def detect_variants(state: dict) -> dict[str, str | None]:
    """{"backbone": ..., "inter_block": ..., "refine_block": ...} of a state dict with our key
    names; None where the layout matches no variant."""
    return {key: variant_named(key, layout(state, prefix)) for key, _, prefix, _ in VARIANT_PARTS}


def variant_mismatches(file_state: dict, model_state: dict) -> tuple[list[str], bool]:
    """One phrase per part in which a checkpoint's variant differs from the model's, and whether
    every part of the checkpoint is a variant the network can build."""
    phrases, known = [], True
    for key, _, prefix, where in VARIANT_PARTS:
        file_layout, model_layout = layout(file_state, prefix), layout(model_state, prefix)
        if file_layout == model_layout:
            continue
        theirs, ours = variant_named(key, file_layout), variant_named(key, model_layout)
        known = known and theirs is not None
        if theirs is not None and ours is not None:
            phrases.append(f"checkpoint has {_evidence(file_layout, model_layout)} in {where} ({theirs}); "
                           f"config builds {ours} (model.{key})")
    return phrases, known


def _evidence(file_layout: dict, model_layout: dict) -> str:
    """The first convolution that tells two layouts apart, as a short phrase."""
    convs = {key: value for key, value in file_layout.items() if isinstance(value, tuple)}
    model_convs = {key: value for key, value in model_layout.items() if isinstance(value, tuple)}
    for key in convs:
        if key not in model_convs:
            return key.removesuffix(".weight")
    for key in model_convs:
        if key not in convs:
            return f"no {key.removesuffix('.weight')}"
    for key, (kernel, depthwise) in convs.items():
        if model_convs[key] != (kernel, depthwise):
            kind = "depthwise" if depthwise else "full"
            return f"a {kind} {'x'.join(map(str, kernel))} {key.removesuffix('.weight')}"
    return "another layout"


def model_dimensions(state: dict) -> dict:
    """depths, width, decoder_width and num_classes of a state dict with our key names."""
    depths = {}
    for key in state:
        match = ENCODER_BLOCK.fullmatch(key)
        if match:
            stage, block = int(match[1]), int(match[2])
            depths[stage] = max(depths.get(stage, 0), block + 1)
    required = ["encoder.conv1.weight", "decoders.0.convG1.weight", "decoders.0.pred2.weight"]
    lacking = [key for key in required if not isinstance(state.get(key), torch.Tensor)]
    lacking += [f"encoder.layer{stage}.0.conv1.weight" for stage in range(1, 5) if stage not in depths]
    if lacking:
        raise UserError(f"cannot tell the model's shape: the weights lack {listing(lacking)}")
    return {"depths": tuple(depths[stage] for stage in range(1, 5)),
            "width": int(state["encoder.conv1.weight"].shape[0]),
            "decoder_width": int(state["decoders.0.convG1.weight"].shape[0]),
            "num_classes": int(state["decoders.0.pred2.weight"].shape[0])}


def infer_model_shape(state: dict) -> dict:
    """`ModelConfig` fields (depths, width, decoder_width, num_classes, backbone,
    inter_block, refine_block) that fit a state dict with our key names."""
    dimensions = model_dimensions(state)
    variants = detect_variants(state)
    unknown = [where for key, _, _, where in VARIANT_PARTS if variants[key] is None]
    if unknown:
        raise UserError(f"cannot tell the model's shape: the layout of {' and '.join(unknown)} "
                        f"matches no variant the network can build")
    return dimensions | variants


def describe_shape(shape: dict) -> str:
    return (f"depths {shape['depths']}, width {shape['width']}, decoder width "
            f"{shape['decoder_width']}, {shape['num_classes']} classes")
