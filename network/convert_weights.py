"""Convert weight files between formats.

    python -m network.convert_weights IN OUT [--to ours|original]

IN may be our checkpoint, an original 3DC-Seg checkpoint (of any encoder and decoder variant),
or a backbone file in any of the formats of network/backbone_formats.py (3dcseg, vmz_caffe2,
vmz_pytorch, mmaction2; ir-CSN or ip-CSN, and 3D ResNets in 3dcseg).

* backbone IN: OUT is a bare state dict with our encoder's names (the 3dcseg layout without
  the classifier), which `model.backbone_weights` reads back;
* full-model IN: OUT is our checkpoint format (`--to ours`, the default; config None, epoch and
  iteration from IN) or the original training-checkpoint format (`--to original`).

The model's shape (variant, depths, widths, classes) is read off IN; every tensor is checked by loading
it into a model of that shape. Writes are atomic. On a problem with the input the command exits
with status 2 and a one-line message.
"""

import argparse
import logging
import sys

import torch

from utils.files import atomic_write
from network import BACKBONES, build_network
from network.backbone_formats import (
    BLOCK_BACKBONES, detect_backbone_format, read_weight_file, source_depths, source_width)
from network.weights import (
    infer_model_shape, load_backbone_source, load_weights, parse_model_checkpoint,
    save_original_checkpoint)
from utils.checkpoint import save_checkpoint
from utils.errors import UserError

logger = logging.getLogger("convert_weights")
ENCODER_BUFFERS = ("mean", "std")  # the input normalisation is configuration, not backbone weights


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
    model = build_network(**infer_model_shape(checkpoint.state), bn_mode="train",
                          bn_eps=1e-5, pixel_mean=(0.0, 0.0, 0.0), pixel_std=(1.0, 1.0, 1.0))
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", metavar="IN", help="checkpoint or backbone weight file")
    parser.add_argument("output", metavar="OUT", help="file to write")
    parser.add_argument("--to", choices=("ours", "original"), default="ours",
                        help="format of a converted full-model checkpoint (default: ours)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        logger.info("converted %s", convert(args.input, args.output, args.to))
    except (UserError, OSError) as error:  # OSError: OUT cannot be written
        logger.error("error: %s", error)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
