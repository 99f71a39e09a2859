"""Mixed int8 for the OpenVINO backend (`inference.precision: int8`): the network's heaviest
convolutions in int8, everything else in bf16.

The convolutions of the decoders' finest refinement block (`RF2`: five 3x3x3 convolutions at a
quarter of the frame's size, about 79 % of bmvc_final's FLOPs) are quantized post-training with
NNCF: int8 weights per output channel, int8 activations at their inputs with ranges calibrated on
the first windows the engine runs (the frames the user infers on), and NNCF's fast bias correction.
Every other operation is left to OpenVINO's bf16. Quantizing the whole network runs a window about
twice as fast again but moves the masks further from fp32 (docs: performance).
"""

import contextlib
import io
import logging
import time

import numpy as np
import torch

from utils.errors import UserError

logger = logging.getLogger(__name__)

NNCF_REQUIREMENT = "pip install -r requirements-openvino.txt"
QUANTIZED_BLOCK = "RF2"  # the decoder block whose convolutions run in int8
GRAPH_INPUTS_AND_CONSTANTS = ("Parameter", "Constant", "Result")


def import_nncf():
    """The nncf module, or a UserError naming what to install."""
    try:
        import nncf
    except ImportError as error:
        raise UserError(f"inference.precision = int8 needs the nncf package: {NNCF_REQUIREMENT}") from error
    return nncf


def heavy_convolutions(model: torch.nn.Module) -> dict[str, np.ndarray]:
    """Name -> float32 weights of every convolution inside a decoder's QUANTIZED_BLOCK."""
    weights = {}
    for name, module in model.named_modules():
        parts = name.split(".")
        if isinstance(module, torch.nn.modules.conv._ConvNd) and QUANTIZED_BLOCK in parts[:-1] and parts[0] == "decoders":
            weights[name] = module.weight.detach().float().cpu().numpy().copy()
    return weights


def graph_convolutions(graph, weights: dict[str, np.ndarray]) -> dict[str, str]:
    """Module name -> friendly name of the graph's Convolution that carries the module's weights
    (found by value: names in a converted graph follow the exported program, not the modules)."""
    found = {}
    for op in graph.get_ordered_ops():
        if op.get_type_name() != "Convolution":
            continue
        source = op.input(1).get_source_output().get_node()
        if source.get_type_name() != "Constant":
            continue
        data = source.get_data()
        for name, weight in weights.items():
            if name not in found and weight.shape == data.shape and np.array_equal(weight, data):
                found[name] = op.get_friendly_name()
                break
    missing = sorted(set(weights) - set(found))
    if missing:
        raise RuntimeError(f"int8: no convolution in the converted network carries the weights of {missing}")
    return found


def quantize(graph, weights: dict[str, np.ndarray], calibration: list[np.ndarray]):
    """`graph` (an OpenVINO model, float32) with the convolutions carrying `weights` quantized to
    int8, calibrated on the clips of `calibration`; every other operation is in NNCF's ignored
    scope and stays as it is."""
    nncf = import_nncf()
    targets = set(graph_convolutions(graph, weights).values())
    ignored = [op.get_friendly_name() for op in graph.get_ordered_ops()
               if op.get_type_name() not in GRAPH_INPUTS_AND_CONSTANTS and op.get_friendly_name() not in targets]
    start = time.perf_counter()
    nncf.set_log_level(logging.WARNING)
    with contextlib.redirect_stdout(io.StringIO()):  # NNCF's progress bars: stdout is for answers
        quantized = nncf.quantize(graph, nncf.Dataset(calibration), subset_size=len(calibration),
                                  fast_bias_correction=True,
                                  ignored_scope=nncf.IgnoredScope(names=ignored, validate=False))
    logger.info("inference.precision = int8: %d convolutions quantized, calibrated on %d clip(s) in %.1f s",
                len(targets), len(calibration), time.perf_counter() - start)
    return quantized
