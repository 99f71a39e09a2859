"""Export the inference network (clip in, logits out) for deployment.

    python -m tasks.export -c run_configs/bmvc_final.yaml --wts bmvc_final.pth [--format pt2|onnx|both]
        [--check-height 128 --check-width 224] [section.key=value ...]

`pt2`: a `torch.export` ExportedProgram (`torch.export.load(path).module()(clip)`);
`onnx`: the same graph through the `torch.onnx` dynamo exporter (opset chosen by PyTorch).
Both take a float clip (N, 3, T, H, W) in [0, 1] with T = input.clip_length fixed and N, H, W
dynamic (H and W multiples of 32), and return logits (N, num_classes, T, H, W); the softmax,
sliding windows and resizing of `--task infer` stay outside the graph.

After writing, each file is loaded back (ONNX with onnxruntime) and run on one random clip of
--check-height x --check-width; the largest absolute difference from the eager model is logged and
must stay below --tolerance. Files go to results/<name>/export/<name>.pt2 and .onnx (atomic writes).
"""

import argparse
import logging
import sys
from pathlib import Path

import torch

from checkpoints.training import check_weights_file
from checkpoints.weights import load_model
from network.exported import dynamic_shapes, example_clip, export_program
from tasks.setup import setup_run
from utils.config import Task, load_config, validate
from utils.errors import UserError, report
from utils.files import atomic_write

logger = logging.getLogger("export")
# Packages that torch.onnx.export runs and that log each graph rewrite at INFO (nodes removed,
# constants folded, initializers merged): kept to their warnings
ONNX_EXPORTER_LOGGERS = ("onnxscript", "onnx_ir")


def save_program(program, tmp_name: str) -> None:
    """torch.export.save into the file `tmp_name` through a file object (given a path, torch warns
    that the name does not end in .pt2: the temp name of an atomic write does not)."""
    with open(tmp_name, "wb") as file:
        torch.export.save(program, file)


def export_pt2(model, clip_length: int, path: Path):
    program = export_program(model, clip_length)
    atomic_write(path, lambda tmp: save_program(program, tmp))
    return lambda clip: torch.export.load(path).module()(clip)


def export_onnx(model, clip_length: int, path: Path):
    for name in ONNX_EXPORTER_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    program = torch.onnx.export(model, (example_clip(clip_length),), dynamo=True,
                                dynamic_shapes=dynamic_shapes(), verbose=False)
    atomic_write(path, lambda tmp: program.save(tmp))

    def run_onnx(clip: torch.Tensor) -> torch.Tensor:
        try:
            import onnxruntime
        except ImportError as error:
            raise UserError("checking the ONNX file needs onnxruntime (pip install onnxruntime)") from error
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        (output,) = session.run(None, {session.get_inputs()[0].name: clip.numpy()})
        return torch.from_numpy(output)
    return run_onnx


EXPORTERS = {"pt2": export_pt2, "onnx": export_onnx}


@torch.no_grad()
def export(cfg, weights_path: str, out_dir: Path, formats, check_shape, tolerance: float) -> dict:
    """Write the requested formats; return {format: (path, max abs difference from eager)}."""
    model, _ = load_model(cfg.model, weights_path)
    model.eval()
    clip = torch.rand(1, 3, cfg.input.clip_length, *check_shape, generator=torch.Generator().manual_seed(0))
    expected = model(clip)
    results = {}
    for name in formats:
        path = out_dir / f"{cfg.name}.{name}"
        logger.info("exporting %s", path)
        run_exported = EXPORTERS[name](model, cfg.input.clip_length, path)
        difference = float((run_exported(clip) - expected).abs().max())
        if not difference <= tolerance:
            raise UserError(f"{path}: exported output differs from the eager model by {difference:.3g} "
                            f"(tolerance {tolerance:g})")
        logger.info("%s: max |exported - eager| = %.3g on a %s clip", path, difference,
                    "x".join(map(str, clip.shape)))
        results[name] = (path, difference)
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", required=True)
    parser.add_argument("--wts", "-w", required=True, help="checkpoint (ours or the original format)")
    parser.add_argument("--format", choices=("pt2", "onnx", "both"), default="both")
    parser.add_argument("--check-height", type=int, default=128, help="height of the check clip (multiple of 32)")
    parser.add_argument("--check-width", type=int, default=224, help="width of the check clip (multiple of 32)")
    parser.add_argument("--tolerance", type=float, default=1e-3, help="largest allowed |exported - eager|")
    parser.add_argument("--verbose", action="store_true",
                        help="also show the resolved config and the software versions on the console")
    parser.add_argument("overrides", nargs="*", help="config overrides as section.key=value")
    args = parser.parse_intermixed_args(argv)
    try:
        if args.check_height % 32 or args.check_width % 32:
            raise UserError("--check-height and --check-width must be multiples of 32")
        check_weights_file(args.wts, "--wts")
        cfg = load_config(args.config, [*args.overrides, "device=cpu"])
        validate(cfg, Task.EXPORT)
        run = setup_run(cfg, Task.EXPORT, verbose=args.verbose)
        formats = ("pt2", "onnx") if args.format == "both" else (args.format,)
        results = export(cfg, args.wts, run.results_dir / "export", formats,
                         (args.check_height, args.check_width), args.tolerance)
    except UserError as error:
        return report(error)
    for name, (path, difference) in results.items():
        logger.info("wrote %s (%s, max difference from eager %.3g)", path, name, difference)
    return 0


if __name__ == "__main__":
    sys.exit(main())
