"""Convert weight files between formats, and export ours to the original's.

    python -m checkpoints.convert IN OUT [--to ours|original]
    python -m network.convert_weights IN OUT [--to ours|original]    (the same command, its former name)

IN may be our checkpoint, an original 3DC-Seg checkpoint (of any encoder and decoder variant),
or a backbone file in any of the formats of checkpoints/backbone_formats.py (3dcseg, vmz_caffe2,
vmz_pytorch, mmaction2; ir-CSN or ip-CSN, and 3D ResNets in 3dcseg).

* backbone IN: OUT is a bare state dict with our encoder's names (the 3dcseg layout without
  the classifier), which `model.backbone_weights` reads back;
* full-model IN: OUT is our checkpoint format (`--to ours`, the default; config None, epoch and
  iteration from IN) or the original training-checkpoint format (`--to original`).

The model's shape (variant, depths, widths, classes) is read off IN; every tensor is checked by loading
it into a model of that shape. Writes are atomic. On a problem with the input the command exits
with status 2 and a one-line message.
"""

import logging
import re
import runpy
from collections import OrderedDict

import torch

from checkpoints.backbone_formats import BLOCK_BACKBONES, detect_backbone_format, source_depths, source_width
from checkpoints.files import read_weight_file
from checkpoints.state_dicts import listing, strip_prefixes
from checkpoints.training import save_checkpoint
from checkpoints.variants import infer_model_shape
from checkpoints.weights import load_backbone_source, load_weights, parse_model_checkpoint
from network import BACKBONES, build_model
from utils.config import ModelConfig
from utils.errors import UserError
from utils.files import atomic_write

logger = logging.getLogger("convert_weights")
ENCODER_BUFFERS = ("mean", "std")  # the input normalisation is configuration, not backbone weights
BACKBONE_KEY = re.compile(r"encoder\.(conv1|bn1|layer[1-4])\.")
KINETICS_CLASSES = 400  # rows of the original's unused `encoder.resnet.fc`
GUIDANCE_KERNEL = 7  # the original's unused `encoder.conv1_p`: Conv3d 1 -> width, kernel 7


def convert(in_path, out_path, to: str = "ours") -> str:
    """Convert IN to OUT; returns a one-line summary."""
    obj = read_weight_file(in_path)
    source = detect_backbone_format(obj)
    if source is not None:
        if to != "ours":
            raise UserError(f"{in_path} is a backbone file ({source.format}); --to {to} needs a "
                            "full-model checkpoint")
        count = _convert_backbone(source, in_path, out_path)
        return f"{source.format} backbone -> {count} encoder tensors in {out_path}"
    checkpoint = parse_model_checkpoint(obj, in_path)
    with torch.device("meta"):  # every tensor comes from IN
        model = build_model(ModelConfig(**infer_model_shape(checkpoint.state), bn_mode="train"))
    load_weights(model, checkpoint.state, source=str(in_path))
    state = model.state_dict()
    if to == "original":
        count = save_original_checkpoint(out_path, state, checkpoint.epoch, checkpoint.iteration)
    else:
        save_checkpoint(out_path, model_state=state, epoch=checkpoint.epoch,
                        iteration=checkpoint.iteration, config=None)
        count = len(state)
    return f"{checkpoint.kind} checkpoint -> {to} format, {count} tensors in {out_path}"


def _convert_backbone(source, in_path, out_path) -> int:
    depths = source_depths(source)
    if len(depths) != 4 or min(depths) < 1:
        raise UserError(f"{in_path}: cannot tell the encoder depths of this {source.format} file "
                        f"(blocks counted per stage: {depths})")
    encoder = BACKBONES[BLOCK_BACKBONES[source.block]](
        depths=depths, width=source_width(source), bn_eps=1e-5, pixel_mean=(0.0, 0.0, 0.0),
        pixel_std=(1.0, 1.0, 1.0))
    load_backbone_source(encoder, source, str(in_path))
    state = {key: value for key, value in encoder.state_dict().items() if key not in ENCODER_BUFFERS}
    atomic_write(out_path, lambda tmp: torch.save(state, tmp))
    return len(state)


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


if __name__ == "__main__":  # the command's former name: python -m checkpoints.convert
    runpy.run_module("tools.convert_weights", run_name="__main__", alter_sys=True)
