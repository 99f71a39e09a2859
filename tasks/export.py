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

import logging
import runpy
from pathlib import Path

import torch

from checkpoints.training import check_weights_file
from checkpoints.weights import load_model
from network.exported import dynamic_shapes, example_clip, export_program
from tasks.setup import setup_run
from utils.config import Task, load_config, validate
from utils.errors import UserError
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


def export_command(config: str, wts: str, overrides: list[str], format_choice: str = "both",
                   check_size: tuple[int, int] = (128, 224), tolerance: float = 1e-3,
                   verbose: bool = False) -> dict:
    """The export of `wts` with the model of `config` (and `overrides`; always on the CPU) into
    results/<name>/export, as `format_choice` (pt2, onnx or both), each file checked on a clip of
    `check_size` (multiples of 32): {format: (path, max difference from eager)}."""
    if check_size[0] % 32 or check_size[1] % 32:
        raise UserError("--check-height and --check-width must be multiples of 32")
    check_weights_file(wts, "--wts")
    cfg = load_config(config, [*overrides, "device=cpu"])
    validate(cfg, Task.EXPORT)
    run = setup_run(cfg, Task.EXPORT, verbose=verbose)
    formats = ("pt2", "onnx") if format_choice == "both" else (format_choice,)
    return export(cfg, wts, run.results_dir / "export", formats, check_size, tolerance)


if __name__ == "__main__":  # the command's former name: python -m tasks.export
    runpy.run_module("tools.export", run_name="__main__", alter_sys=True)
