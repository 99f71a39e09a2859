"""Model weights in every format, read into the 3DC-Seg network: `--wts` (`load_model`) and
backbone files (`load_backbone_weights`).

Full-model checkpoints come in two formats, told apart by `parse_model_checkpoint`:

* ours, read through checkpoints/training.py (`model_entries`), which owns its layout:
  {"format": CHECKPOINT_FORMAT, "model": state dict, "config": ..., ...};
* the original 3DC-Seg training checkpoint (SPEC §5.1-5.2), e.g. the released `bmvc_final.pth`:
  {"epoch", "iter", "model", "optimizer"}, every key prefixed with `module.` when it was trained
  on several GPUs.

Our module names are the original's canonical names (network/model.py) for every encoder and
decoder block it can select, so the original's key table is the identity on our model's keys:
`encoder.mean`/`std`, `encoder.conv1`, `encoder.bn1`, `encoder.layer1-4` and `decoders.0.*`. The
rest of the original state dict is ignored by name (`ORIGINAL_IGNORED`): the `encoder.resnet.*`
aliases of the backbone, where `encoder.resnet.bn1` is a stale copy after apex SyncBN conversion
(the forward pass uses `encoder.bn1`, SPEC §13 item 4); the unused Kinetics classifier
`encoder.resnet.fc`; the mask-guidance stem `encoder.conv1_p`; and the discarded heads
`decoders.0.pred3`-`pred5`. `checkpoints.convert` writes all of these back.

`load_model(model_config, path)`, the `--wts` path: the file is read once (`read_weight_file`,
memory-mapped), the network is built on the meta device (no random initialisation of tensors
about to be replaced), the file is checked against the configuration, and its tensors become the
model's (`load_state_dict(assign=True)`). Our checkpoints are checked by the model section of the
config they carry; files without one (original checkpoints) by their layout (checkpoints/variants.py).
A checkpoint of another variant is refused with one line naming both.

Backbone-only files (four formats, key tables in checkpoints/backbone_formats.py) are loaded into
the encoder by `load_backbone_weights`. Every problem a user can cause raises a one-line
UserError; a strict load lists the missing, unexpected and mis-shaped tensors together
(checkpoints/state_dicts.py).
"""

import logging
import re
from collections import OrderedDict
from dataclasses import dataclass

import torch

from checkpoints.backbone_formats import (
    BACKBONE_FORMATS, BLOCK_BACKBONES, BLOCK_TITLES, BackboneSource, detect_backbone_format,
    map_backbone, source_block, source_depths)
from checkpoints.files import read_weight_file
from checkpoints.state_dicts import StateDiff, compare_state, listing, meta_tensors, strip_prefixes
from checkpoints.training import is_our_checkpoint, model_entries
from checkpoints.variants import describe_shape, model_dimensions, variant_mismatches
from network import build_model
from utils.errors import UserError

logger = logging.getLogger(__name__)

ORIGINAL_IGNORED = re.compile(
    r"encoder\.resnet\..+|encoder\.conv1_p\.weight|decoders\.0\.pred[345]\.(weight|bias)")
FORMAT_TITLES = {"ours": "our checkpoint", "original": "original 3DC-Seg checkpoint"}
EPS_1E3_FORMATS = ("vmz_caffe2", "vmz_pytorch", "mmaction2")
# The model keys that decide which tensors a checkpoint holds (the rest do not change its state dict).
ARCHITECTURE_KEYS = ("backbone", "depths", "width", "decoder_width", "inter_block", "refine_block",
                     "num_classes")


@dataclass
class ModelCheckpoint:
    """A full-model checkpoint, with its tensors under our key names."""
    kind: str  # "ours" or "original"
    state: dict
    epoch: int
    iteration: int
    multi_gpu: bool  # the keys carried the `module.` prefix of multi-GPU training
    config: dict | None = None  # ours: the config it was trained with (utils.config.to_dict)
    training: dict | None = None  # ours, written by training: what a resume needs (checkpoints/training.py)

    @property
    def model_config(self) -> dict | None:
        """The model section of the stored config."""
        model = self.config.get("model") if self.config is not None else None
        return model if isinstance(model, dict) else None


def load_weights(model: torch.nn.Module, state: dict, strict: bool = True, *,
                 source: str = "the weights") -> None:
    """Load `state` (prefixes stripped) into `model`.

    strict: every model tensor must be present with the same shape and nothing else may be
    there, otherwise one UserError lists all problems. Not strict: load what fits, log the rest.
    """
    _load_state(model, strip_prefixes(state), strict, source)


def _load_state(model: torch.nn.Module, state: dict, strict: bool, source: str) -> None:
    """`load_weights` for a state dict without prefixes. A model built on the meta device takes the
    file's tensors themselves (cast to the model's dtype where it differs); any other is copied into."""
    expected = model.state_dict()
    difference = compare_state(expected, state)
    problems = difference.problems()
    if strict and problems:
        raise difference.error(source)
    fitting = {key: value for key, value in state.items() if key in expected
               and isinstance(value, torch.Tensor) and value.shape == expected[key].shape}
    on_meta = bool(meta_tensors(model))
    if on_meta:
        fitting = {key: value.to(expected[key].dtype) for key, value in fitting.items()}
    model.load_state_dict(fitting, strict=strict, assign=on_meta)
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
    if is_our_checkpoint(obj):
        entries = model_entries(obj, path)
        return ModelCheckpoint("ours", strip_prefixes(entries.state), _counter(entries.epoch),
                               _counter(entries.iteration), _has_module_prefix(entries.state),
                               entries.config, entries.training)
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
    if is_our_checkpoint(obj) or _is_original_checkpoint(obj):
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


def read_model_checkpoint(path) -> ModelCheckpoint:
    """A full-model checkpoint file (ours or the original's), read once."""
    return parse_model_checkpoint(read_weight_file(path), path)


def load_model(model_config, path,
               checkpoint: ModelCheckpoint | None = None) -> tuple[torch.nn.Module, ModelCheckpoint]:
    """The network of a `ModelConfig` with the weights of the full-model checkpoint `path`: built
    on the meta device, checked against the file, then holding the file's tensors (on the CPU).
    checkpoint: the file already read (`read_model_checkpoint(path)`), else it is read here."""
    with torch.device("meta"):
        model = build_model(model_config)
    if checkpoint is None:
        checkpoint = read_model_checkpoint(path)
    load_checkpoint(model, checkpoint, path, model_config)
    left = meta_tensors(model)
    if left:
        raise RuntimeError(f"tensors left on the meta device after loading {path}: {listing(left)}")
    return model, checkpoint


def load_model_weights(model: torch.nn.Module, path) -> str:
    """Load a full-model checkpoint (ours or the original's) strictly into `model`; returns its
    format name."""
    checkpoint = read_model_checkpoint(path)
    load_checkpoint(model, checkpoint, path)
    return checkpoint.kind


def load_checkpoint(model: torch.nn.Module, checkpoint: ModelCheckpoint, path, model_config=None) -> None:
    """Check `checkpoint` against the model (by the config it carries when the caller gives the
    run's, else by its layout), then load it strictly."""
    source = f"{path} ({FORMAT_TITLES[checkpoint.kind]})"
    expected = model.state_dict()
    if checkpoint.model_config is not None and model_config is not None:
        mismatches, known = config_mismatches(checkpoint.model_config, model_config), True
    else:
        mismatches, known = variant_mismatches(checkpoint.state, expected)
    if mismatches:
        raise UserError(f"cannot load {source}: {'; '.join(mismatches)}")
    file_shape = _dimensions_or_none(checkpoint.state) if known else None
    model_shape = model_dimensions(expected)
    if file_shape is not None and file_shape != model_shape:
        problems = compare_state(expected, checkpoint.state).problems()
        raise UserError(f"cannot load {source} into the model: the file holds a model with "
                        f"{describe_shape(file_shape)}, the configured one has "
                        f"{describe_shape(model_shape)}; {'; '.join(problems)}")
    _load_state(model, checkpoint.state, strict=True, source=source)
    logger.info("loaded %s%s from %s (epoch %d, iteration %d)", FORMAT_TITLES[checkpoint.kind],
                " with multi-GPU `module.` prefix" if checkpoint.multi_gpu else "", path,
                checkpoint.epoch, checkpoint.iteration)


def config_mismatches(stored: dict, model_config) -> list[str]:
    """One phrase per architecture key in which the config a checkpoint carries differs from the run's."""
    phrases = []
    for key in ARCHITECTURE_KEYS:
        ours = getattr(model_config, key)
        theirs = stored.get(key, ours)
        if _plain(theirs) != _plain(ours):
            phrases.append(f"checkpoint was trained with model.{key} = {_plain(theirs)}; config builds "
                           f"{_plain(ours)} (model.{key})")
    return phrases


def _plain(value):
    return list(value) if isinstance(value, (list, tuple)) else value


def _dimensions_or_none(state: dict) -> dict | None:
    try:
        return model_dimensions(state)
    except UserError:
        return None


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
