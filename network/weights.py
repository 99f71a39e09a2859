"""Loading and exporting the weights of the 3DC-Seg network.

Full-model checkpoints come in two formats, told apart by `load_model_weights`:

* ours (`utils/checkpoint.py`): {"format": CHECKPOINT_FORMAT, "model": state dict, ...};
* the original 3DC-Seg training checkpoint (SPEC §5.1-5.2), e.g. the released `bmvc_final.pth`:
  {"epoch", "iter", "model", "optimizer"}, every key prefixed with `module.` when it was trained
  on several GPUs.

Our module names are the original's canonical names (network/model.py) for every encoder and
decoder block it can select, so the original's key table is the identity on our model's keys: `encoder.mean`/`std`, `encoder.conv1`, `encoder.bn1`,
`encoder.layer1-4` and `decoders.0.*`. The rest of the original state dict is ignored by name
(`ORIGINAL_IGNORED`): the `encoder.resnet.*` aliases of the backbone, where `encoder.resnet.bn1`
is a stale copy after apex SyncBN conversion (the forward pass uses `encoder.bn1`, SPEC §13
item 4); the unused Kinetics classifier `encoder.resnet.fc`; the mask-guidance stem
`encoder.conv1_p`; and the discarded heads `decoders.0.pred3`-`pred5`. `export_original` writes
all of these back, so the original code can load our weights.

Backbone-only files (four formats, key tables in network/backbone_formats.py) are loaded into
the encoder by `load_backbone_weights`.

Which variant a state dict holds (model.backbone, model.inter_block, model.refine_block) is read
off the layout of one encoder block, the inter block and a refine block: their tensor names,
kernel sizes and which convolutions are depthwise, compared with every variant built on the meta
device (`detect_variants`). A checkpoint of another variant is refused with one line naming
both, e.g. "checkpoint has conv4 in encoder blocks (csn_ip); config builds csn_ir".

Every problem a user can cause raises a one-line UserError; a strict load lists the missing,
unexpected and mis-shaped tensors together.
"""

import functools
import logging
import re
from collections import OrderedDict
from dataclasses import dataclass

import torch

from network import BACKBONES, INTER_BLOCKS, REFINE_BLOCKS, build_network
from utils.files import atomic_write
from network.backbone_formats import (
    BACKBONE_FORMATS, BLOCK_BACKBONES, BLOCK_TITLES, BackboneSource, detect_backbone_format,
    map_backbone, read_weight_file, source_block, source_depths)
from utils.checkpoint import CHECKPOINT_FORMAT
from utils.errors import UserError

logger = logging.getLogger(__name__)

PREFIXES = ("module.", "_orig_mod.")  # (Distributed)DataParallel, torch.compile
ORIGINAL_IGNORED = re.compile(
    r"encoder\.resnet\..+|encoder\.conv1_p\.weight|decoders\.0\.pred[345]\.(weight|bias)")
BACKBONE_KEY = re.compile(r"encoder\.(conv1|bn1|layer[1-4])\.")
ENCODER_BLOCK = re.compile(r"encoder\.layer([1-4])\.(\d+)\.conv1\.weight")
FORMAT_TITLES = {"ours": "our checkpoint", "original": "original 3DC-Seg checkpoint"}
KINETICS_CLASSES = 400  # rows of the original's unused `encoder.resnet.fc`
GUIDANCE_KERNEL = 7  # the original's unused `encoder.conv1_p`: Conv3d 1 -> width, kernel 7
EPS_1E3_FORMATS = ("vmz_caffe2", "vmz_pytorch", "mmaction2")
LISTED_NAMES = 5
# The parts that tell the variants apart: (config key, table, state-dict prefix, what it is).
VARIANT_PARTS = (
    ("backbone", BACKBONES, "encoder.layer4.0.", "encoder blocks"),
    ("inter_block", INTER_BLOCKS, "decoders.0.GC.", "decoders.0.GC"),
    ("refine_block", REFINE_BLOCKS, "decoders.0.RF4.", "the refine blocks decoders.0.RF*"),
)
# Small enough to build instantly, large enough for every block's GroupNorm (on the meta device).
PROBE_SHAPE = {"depths": (1, 1, 1, 1), "width": 32, "decoder_width": 128, "num_classes": 2}


@dataclass
class StateDiff:
    """Differences between the tensors a model expects and those a file provides."""
    missing: list[str]
    unexpected: list[str]
    mismatched: list[str]  # "name: file [..], model [..]"

    def problems(self) -> list[str]:
        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} missing ({listing(self.missing)})")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected ({listing(self.unexpected)})")
        if self.mismatched:
            parts.append(f"{len(self.mismatched)} with another shape ({listing(self.mismatched)})")
        return parts


@dataclass
class ModelCheckpoint:
    """A full-model checkpoint, with its tensors under our key names."""
    kind: str  # "ours" or "original"
    state: dict
    epoch: int
    iteration: int
    multi_gpu: bool  # the keys carried the `module.` prefix of multi-GPU training


def listing(names, limit: int = LISTED_NAMES) -> str:
    """The first `limit` names, comma-separated, and how many more there are."""
    names = list(names)
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown}, ... (+{len(names) - limit} more)"


def strip_prefixes(state: dict) -> dict:
    """The state dict with leading `module.` and `_orig_mod.` removed from every key."""
    stripped = OrderedDict()
    for key, value in state.items():
        if not isinstance(key, str):
            raise UserError(f"the weights have a key that is not a name: {key!r}")
        name = _without_prefixes(key)
        if name in stripped:
            raise UserError(f"the weights hold '{name}' twice (with and without a prefix)")
        stripped[name] = value
    return stripped


def _without_prefixes(name: str) -> str:
    while name.startswith(PREFIXES):
        prefix = next(prefix for prefix in PREFIXES if name.startswith(prefix))
        name = name[len(prefix):]
    return name


def compare_state(expected: dict, state: dict) -> StateDiff:
    """Which keys of `expected` are missing from `state`, which are extra, which differ in shape."""
    mismatched = []
    for key, reference in expected.items():
        value = state.get(key)
        if key in state and not isinstance(value, torch.Tensor):
            mismatched.append(f"{key}: not a tensor but {type(value).__name__}")
        elif key in state and value.shape != reference.shape:
            mismatched.append(f"{key}: file {list(value.shape)}, model {list(reference.shape)}")
    return StateDiff(missing=[key for key in expected if key not in state],
                     unexpected=[key for key in state if key not in expected],
                     mismatched=mismatched)


def load_weights(model: torch.nn.Module, state: dict, strict: bool = True, *,
                 source: str = "the weights") -> None:
    """Load `state` (prefixes stripped) into `model`.

    strict: every model tensor must be present with the same shape and nothing else may be
    there, otherwise one UserError lists all problems. Not strict: load what fits, log the rest.
    """
    state = strip_prefixes(state)
    expected = model.state_dict()
    problems = compare_state(expected, state).problems()
    if strict:
        if problems:
            raise UserError(f"cannot load {source} into the model: {'; '.join(problems)}")
        model.load_state_dict(state)
        return
    fitting = {key: value for key, value in state.items() if key in expected
               and isinstance(value, torch.Tensor) and value.shape == expected[key].shape}
    model.load_state_dict(fitting, strict=False)
    if problems:
        logger.warning("loaded %d of %d tensors from %s; %s", len(fitting), len(expected), source,
                       "; ".join(problems))


def original_to_ours(state: dict) -> dict:
    """An original 3DC-Seg state dict under our names: prefixes stripped, the tensors our model
    does not have (see ORIGINAL_IGNORED) dropped; everything else is kept for the strict check."""
    return OrderedDict((key, value) for key, value in strip_prefixes(state).items()
                       if not ORIGINAL_IGNORED.fullmatch(key))


def parse_model_checkpoint(obj, path) -> ModelCheckpoint:
    """Recognise our or the original checkpoint format in a loaded file."""
    if isinstance(obj, dict) and "format" in obj:
        if obj["format"] != CHECKPOINT_FORMAT or not isinstance(obj.get("model"), dict):
            raise UserError(f"{path}: checkpoint format {obj['format']!r} is not supported "
                            f"(expected {CHECKPOINT_FORMAT!r} with a 'model' state dict)")
        return ModelCheckpoint("ours", strip_prefixes(obj["model"]), _counter(obj.get("epoch")),
                               _counter(obj.get("iteration")), _has_module_prefix(obj["model"]))
    if _is_original_checkpoint(obj):
        return ModelCheckpoint("original", original_to_ours(obj["model"]),
                               _counter(obj.get("epoch")), _counter(obj.get("iter")),
                               _has_module_prefix(obj["model"]))
    raise UserError(f"{path} is not a 3DC-Seg model checkpoint: {describe_weight_object(obj)}")


def _counter(value) -> int:
    """An epoch or iteration number from a checkpoint; 0 when absent or not an integer."""
    return value if isinstance(value, int) else 0


def _is_original_checkpoint(obj) -> bool:
    model = obj.get("model") if isinstance(obj, dict) else None
    return isinstance(model, dict) and any(
        isinstance(key, str) and key.startswith(("encoder.", "decoders.", "module."))
        for key in model)


def _has_module_prefix(state: dict) -> bool:
    return any(isinstance(key, str) and key.startswith("module.") for key in state)


def describe_weight_object(obj) -> str:
    """What a loaded file looks like, for error messages."""
    if isinstance(obj, dict) and ("format" in obj or _is_original_checkpoint(obj)):
        return "looks like a full-model checkpoint; pass it with --wts"
    source = detect_backbone_format(obj)
    if source is not None:
        return f"looks like a backbone-only file ({source.format}); use it as model.backbone_weights"
    if not isinstance(obj, dict):
        return f"it holds a Python {type(obj).__name__}"
    names = [str(key) for key in obj]
    if any(name.startswith(("encoder.", "decoders.")) for name in names):
        return "a bare state dict; expected a checkpoint dict with a 'model' entry"
    return f"a dict with keys {listing(names)}" if names else "an empty dict"


def load_model_weights(model: torch.nn.Module, path) -> str:
    """Load a full-model checkpoint (ours or the original's) strictly; returns its format name."""
    checkpoint = parse_model_checkpoint(read_weight_file(path), path)
    source = f"{path} ({FORMAT_TITLES[checkpoint.kind]})"
    mismatches = variant_mismatches(checkpoint.state, model.state_dict())
    if mismatches:
        raise UserError(f"cannot load {source}: {'; '.join(mismatches)}")
    file_shape, model_shape = try_infer_model_shape(checkpoint.state), infer_model_shape(model.state_dict())
    if file_shape is not None and file_shape != model_shape:
        problems = compare_state(model.state_dict(), checkpoint.state).problems()
        raise UserError(f"cannot load {source} into the model: the file holds a model with "
                        f"{describe_shape(file_shape)}, the configured one has "
                        f"{describe_shape(model_shape)}; {'; '.join(problems)}")
    load_weights(model, checkpoint.state, source=source)
    logger.info("loaded %s%s from %s (epoch %d, iteration %d)", FORMAT_TITLES[checkpoint.kind],
                " with multi-GPU `module.` prefix" if checkpoint.multi_gpu else "", path,
                checkpoint.epoch, checkpoint.iteration)
    return checkpoint.kind


def encoder_depths(encoder: torch.nn.Module) -> tuple[int, ...]:
    return tuple(len(getattr(encoder, f"layer{stage}")) for stage in range(1, 5))


def load_backbone_weights(encoder: torch.nn.Module, path) -> str:
    """Load a backbone file (any of BACKBONE_FORMATS) into an `Encoder3d`; returns the detected
    format. The encoder's `mean`/`std` buffers keep their configured values."""
    obj = read_weight_file(path)
    source = detect_backbone_format(obj)
    if source is None:
        raise UserError(f"{path} is not a CSN or 3D ResNet backbone file in a known format "
                        f"({', '.join(BACKBONE_FORMATS)}): {describe_weight_object(obj)}")
    load_backbone_source(encoder, source, str(path))
    eps_note = ""
    if source.format in EPS_1E3_FORMATS:
        eps_note = (f"; these weights were trained with BatchNorm eps 1e-3, the model uses "
                    f"{encoder.bn1.eps:g} (model.bn_eps)")
    logger.info("loaded %s backbone weights (%s format) from %s%s", BLOCK_TITLES[source.block],
                source.format, path, eps_note)
    return source.format


def load_backbone_source(encoder: torch.nn.Module, source: BackboneSource, origin: str) -> None:
    """Copy a recognised backbone file's tensors into `encoder`, checking depth, names and shapes."""
    block = source_block(BackboneSource("3dcseg", encoder.state_dict()))
    if source.block != block:
        raise UserError(f"{origin}: backbone file holds {BLOCK_TITLES[source.block]} blocks "
                        f"({BLOCK_BACKBONES[source.block]}); config builds {BLOCK_BACKBONES[block]} "
                        f"(model.backbone)")
    depths, file_depths = encoder_depths(encoder), source_depths(source)
    if file_depths != depths:
        raise UserError(f"{origin}: backbone file is {BLOCK_TITLES[block]} with depths {file_depths}; "
                        f"the model has {depths}")
    state, unknown, missing = map_backbone(source, depths)
    state["mean"], state["std"] = encoder.mean, encoder.std
    mismatched = compare_state(encoder.state_dict(), state).mismatched
    problems = StateDiff(missing=missing, unexpected=unknown, mismatched=mismatched).problems()
    if problems:
        raise UserError(f"cannot load backbone {origin} ({source.format} format): "
                        f"{'; '.join(problems)}")
    encoder.load_state_dict(state)


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
                model = build_network(**PROBE_SHAPE, bn_mode="train", bn_eps=1e-5, pixel_mean=(0, 0, 0),
                                      pixel_std=(1, 1, 1), **dict(default, **{key: name}))
            references[key][name] = layout(model.state_dict(), prefix)
    return references


def detect_variants(state: dict) -> dict[str, str | None]:
    """{"backbone": ..., "inter_block": ..., "refine_block": ...} of a state dict with our key
    names; None where the layout matches no variant."""
    found = {}
    for key, _, prefix, _ in VARIANT_PARTS:
        observed = layout(state, prefix)
        found[key] = next((name for name, reference in reference_layouts()[key].items()
                           if reference == observed), None)
    return found


def variant_mismatches(file_state: dict, model_state: dict) -> list[str]:
    """One phrase per part in which a checkpoint's variant differs from the model's."""
    file_variants, model_variants = detect_variants(file_state), detect_variants(model_state)
    phrases = []
    for key, _, prefix, where in VARIANT_PARTS:
        ours, theirs = model_variants[key], file_variants[key]
        if theirs is not None and ours is not None and theirs != ours:
            evidence = _evidence(layout(file_state, prefix), layout(model_state, prefix))
            phrases.append(f"checkpoint has {evidence} in {where} ({theirs}); config builds "
                           f"{ours} (model.{key})")
    return phrases


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


def try_infer_model_shape(state: dict) -> dict | None:
    try:
        return infer_model_shape(state)
    except UserError:
        return None


def infer_model_shape(state: dict) -> dict:
    """`build_network` arguments (depths, width, decoder_width, num_classes, backbone,
    inter_block, refine_block) that fit a state dict with our key names."""
    state = strip_prefixes(state)
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
    variants = detect_variants(state)
    unknown = [where for key, _, _, where in VARIANT_PARTS if variants[key] is None]
    if unknown:
        raise UserError(f"cannot tell the model's shape: the layout of {' and '.join(unknown)} "
                        f"matches no variant the network can build")
    return {"depths": tuple(depths[stage] for stage in range(1, 5)),
            "width": int(state["encoder.conv1.weight"].shape[0]),
            "decoder_width": int(state["decoders.0.convG1.weight"].shape[0]),
            "num_classes": int(state["decoders.0.pred2.weight"].shape[0]), **variants}


def describe_shape(shape: dict) -> str:
    return (f"depths {shape['depths']}, width {shape['width']}, decoder width "
            f"{shape['decoder_width']}, {shape['num_classes']} classes")


def export_original(model_state: dict, epoch: int = 0, iteration: int = 0) -> dict:
    """Our model's state dict as an original 3DC-Seg training checkpoint (SPEC §5.1).

    "model" holds every key the original `SaliencyNetwork` has (1915 for the full size): our
    tensors, their `encoder.resnet.*` aliases (the same tensors; `encoder.resnet.bn1` a copy of
    `encoder.bn1`), and zeros for the parts we do not model: `encoder.resnet.fc`,
    `encoder.conv1_p` and `decoders.0.pred3`-`pred5`. "optimizer" is left out: the original loader
    restores it only when present, while an empty one would make it reset epoch and iteration.
    """
    state = strip_prefixes(model_state)
    infer_model_shape(state)
    _require(state, ["encoder.mean", "encoder.std", "encoder.layer4.0.downsample.0.weight",
                     "decoders.0.pred2.bias"])
    backbone = [(key, value) for key, value in state.items() if BACKBONE_KEY.match(key)]
    decoder = [(key, value) for key, value in state.items() if key.startswith("decoders.0.")]
    width = state["encoder.conv1.weight"].shape[0]
    model = OrderedDict([("encoder.mean", state["encoder.mean"]), ("encoder.std", state["encoder.std"]),
                         ("encoder.conv1_p.weight", torch.zeros(width, 1, *(GUIDANCE_KERNEL,) * 3))])
    for key, value in backbone:
        alias = "encoder.resnet." + key.removeprefix("encoder.")
        model[alias] = value.clone() if key.startswith("encoder.bn1.") else value
    features = state["encoder.layer4.0.downsample.0.weight"].shape[0]
    model["encoder.resnet.fc.weight"] = torch.zeros(KINETICS_CLASSES, features)
    model["encoder.resnet.fc.bias"] = torch.zeros(KINETICS_CLASSES)
    model.update(backbone)
    model.update(decoder)
    for head in ("pred5", "pred4", "pred3"):
        for field in ("weight", "bias"):
            model[f"decoders.0.{head}.{field}"] = torch.zeros_like(state[f"decoders.0.pred2.{field}"])
    leftover = [key for key in state if key not in model]
    if leftover:
        raise UserError(f"cannot export: the state dict holds tensors the original model has no "
                        f"place for: {listing(leftover)}")
    return {"epoch": epoch, "iter": iteration, "model": model}


def _require(state: dict, keys: list[str]) -> None:
    lacking = [key for key in keys if key not in state]
    if lacking:
        raise UserError(f"the weights lack {listing(lacking)}")


def save_original_checkpoint(path, model_state: dict, epoch: int = 0, iteration: int = 0) -> int:
    """Write `export_original(...)` atomically; returns the number of tensors written.

    Uses torch's legacy (non-zip) serialisation so that PyTorch 1.5, the original's version
    (SPEC §0), can read the file.
    """
    checkpoint = export_original(model_state, epoch, iteration)
    atomic_write(path, lambda tmp: torch.save(checkpoint, tmp, _use_new_zipfile_serialization=False))
    return len(checkpoint["model"])
