"""How the engine runs the network: the torch model made ready for inference, torch.compile the
CPU's way, and the optional OpenVINO runtime (`inference.backend`), with mixed int8
(`inference.precision: int8`, inference_handlers/inference/quantized.py).

A network the engine owns (`--task infer` / `eval`, `Segmenter`, the benchmark) is changed in
place for inference; a live one (validation during training, whose weights keep changing and
must stay as they are) is run as it is, with the torch backend and without freezing.
"""

import dataclasses
import hashlib
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.nn.modules.conv import _ConvNd

from inference_handlers.inference import quantized
from inference_handlers.inference.background import intra_op_threads
from network.exported import export_program
from network.fold_bn import fold_batchnorm
from utils.config import InferenceConfig
from utils.errors import UserError
from utils.precision import AUTOCAST_DTYPES

logger = logging.getLogger(__name__)

OPENVINO_REQUIREMENT = "pip install -r requirements-openvino.txt"
CACHE_FORMAT = "1"  # part of every cache key: bump it when what is cached changes
FROZEN_CPU_COMPILE = {"freezing": True, "cpp.weight_prepack": False}


def runtime(inference: InferenceConfig) -> str:
    """The backend that runs the network: inference.backend, where `auto` is openvino for
    precision int8 (the runtime that has it) and torch otherwise."""
    if inference.backend != "auto":
        if inference.precision == "int8" and inference.backend != "openvino":
            raise UserError(f"inference.precision = int8 runs on the openvino backend; "
                            f"set inference.backend=auto or openvino (it is {inference.backend})")
        return inference.backend
    return "openvino" if inference.precision == "int8" else "torch"


def resolved_settings(inference: InferenceConfig, device: torch.device, live_network: bool) -> InferenceConfig:
    """`inference` with its `auto` values decided (backend: `runtime`, channels_last:
    `uses_channels_last`). A live network (validation during training) runs the torch backend,
    int8 as bf16; OpenVINO runs on the CPU only."""
    if runtime(inference) == "openvino" and live_network:
        logger.info("inference.backend = openvino: validation during training runs the torch backend%s",
                    " in bf16" if inference.precision == "int8" else "")
        precision = "bf16" if inference.precision == "int8" else inference.precision
        inference = dataclasses.replace(inference, backend="torch", precision=precision)
    inference = dataclasses.replace(inference, backend=runtime(inference),
                                    channels_last=uses_channels_last(inference, device, live_network))
    if inference.backend == "openvino" and device.type != "cpu":
        if inference.precision == "int8":
            raise UserError(f"inference.precision = int8 runs on the CPU (device is {device.type}); "
                            f"set device=cpu or another inference.precision")
        raise UserError(f"inference.backend = openvino runs on the CPU (device is {device.type}); "
                        f"set device=cpu or inference.backend=torch")
    return inference


def uses_channels_last(inference: InferenceConfig, device: torch.device, live_network: bool) -> bool:
    """inference.channels_last, where `auto` is on for bf16 on the CPU with the torch backend (where
    it was measured to pay) for a network the engine owns, off otherwise."""
    if inference.channels_last != "auto":
        return inference.channels_last
    return (device.type == "cpu" and inference.precision == "bf16" and runtime(inference) == "torch"
            and not live_network)


def prepare_model(model: torch.nn.Module, inference: InferenceConfig, device: torch.device,
                  live_network: bool) -> torch.nn.Module:
    """The model made ready for the engine: BatchNorm folded into the convolutions
    (inference.fold_bn, network/fold_bn.py) and, under a bf16 / fp16 autocast, the convolutions'
    weights stored in that dtype once (autocast casts them to it at every call: the same
    numbers); in channels_last_3d with inference.channels_last. A live network keeps its weights;
    the OpenVINO backend takes the folded float32 model (it chooses its own layouts). With one
    intra-op thread: hundreds of small tensors, each a parallel region that waits for a second
    thread (0.24 instead of 3.3 s for the full network on two busy cores)."""
    with intra_op_threads(1):
        return _prepared(model, inference, device, live_network)


def _prepared(model: torch.nn.Module, inference: InferenceConfig, device: torch.device,
              live_network: bool) -> torch.nn.Module:
    torch_backend = runtime(inference) == "torch"
    if not live_network:
        if inference.fold_bn:
            fold_batchnorm(model)
        dtype = autocast_dtype(device, inference.precision)
        if dtype is not None and torch_backend:
            for module in model.modules():
                if isinstance(module, _ConvNd):
                    module.to(dtype)
    if uses_channels_last(inference, device, live_network) and torch_backend:
        model.to(memory_format=torch.channels_last_3d)
    return model


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The dtype `autocast_for(device, precision)` computes convolutions in, None without autocast."""
    if precision not in AUTOCAST_DTYPES or (precision == "fp16" and device.type != "cuda"):
        return None
    return AUTOCAST_DTYPES[precision]


def compile_network(model: torch.nn.Module, device: torch.device, live_network: bool):
    """torch.compile of the model; on a CPU for a network the engine owns, with inductor's
    freezing (the weights become constants, folded into the graph; a live network's weights
    change after compiling, so it is not frozen). Freezing's weight pre-packing for oneDNN is left
    off: it gained nothing measurable on the full network, and its packed tensors keep inductor's
    on-disk cache from storing the graph, so every run would compile again (minutes)."""
    frozen = device.type == "cpu" and not live_network
    return torch.compile(model, options=FROZEN_CPU_COMPILE if frozen else None)


def import_openvino():
    """The openvino module, or a UserError naming what to install."""
    try:
        import openvino
    except ImportError as error:
        raise UserError(f"inference.backend = openvino needs the openvino package: {OPENVINO_REQUIREMENT}") from error
    return openvino


def cache_root() -> Path:
    """Where converted networks are kept: $XDG_CACHE_HOME/3dcseg, by default ~/.cache/3dcseg."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "3dcseg"


def network_fingerprint(model: torch.nn.Module, *parts: str) -> str:
    """A hash of everything a converted network depends on: its weights (names, shapes, dtypes,
    values), the source of the modules that compute it, and `parts` (versions, settings)."""
    digest = hashlib.sha256("\0".join((CACHE_FORMAT, *parts)).encode())
    sources = sorted({type(module).__module__ for module in model.modules()})
    for name in sources:
        path = getattr(sys.modules.get(name), "__file__", None)
        digest.update(name.encode() + (Path(path).read_bytes() if path else b""))
    for name, tensor in model.state_dict().items():
        digest.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()[:32]


class OpenVinoNetwork:
    """The network run by OpenVINO on the CPU: exported with torch.export (network/exported.py),
    converted once and kept in cache_root()/openvino/<fingerprint>/ (a later run with the same
    weights and code reads it back in about a second), compiled for each input shape (the
    windows of a sequence share one) with the precision's hint: f32 for fp32 (and for fp16,
    as the torch backend on a CPU), bf16 for bf16 and int8. With int8 the first clips the network
    is called with calibrate its heaviest convolutions (inference_handlers/inference/quantized.py), kept
    in cache_root()/openvino/<fingerprint>-int8-<hash of the clips>/. Clips in, float32 logits out."""

    def __init__(self, model: torch.nn.Module, precision: str, clip_length: int):
        self.openvino = import_openvino()
        self.int8_weights = None  # the convolutions still to quantize, until the first call
        if precision == "int8":
            quantized.import_nncf()
            self.int8_weights = quantized.heavy_convolutions(model)
        self.core = self.openvino.Core()
        self.hint = "f32" if precision in ("fp32", "fp16") else "bf16"
        self.graph = self._converted(model.eval(), clip_length)
        self.requests = {}  # input shape -> infer request of the network compiled for it

    def _converted(self, model: torch.nn.Module, clip_length: int):
        ov = self.openvino
        self.folder = cache_root() / "openvino" / network_fingerprint(
            model, ov.__version__, torch.__version__, str(clip_length))
        if (self.folder / "model.xml").is_file():
            return self.core.read_model(self.folder / "model.xml")
        start = time.perf_counter()
        with torch.no_grad():
            graph = ov.convert_model(export_program(model, clip_length))
        logger.info("inference.backend = openvino: network converted in %.1f s, kept in %s",
                    time.perf_counter() - start, self.folder)
        self._keep(graph, self.folder)
        return graph

    def _quantized(self, clips: torch.Tensor):
        """The graph with its heaviest convolutions in int8, calibrated on `clips` (cached; the key
        also holds the quantizer's version and source)."""
        nncf = quantized.import_nncf()
        digest = hashlib.sha256(f"{nncf.__version__}{tuple(clips.shape)}".encode())
        digest.update(Path(quantized.__file__).read_bytes())
        digest.update(clips.float().contiguous().numpy().tobytes())
        folder = self.folder.with_name(f"{self.folder.name}-int8-{digest.hexdigest()[:16]}")
        if (folder / "model.xml").is_file():
            return self.core.read_model(folder / "model.xml")
        graph = self.graph.clone()
        graph.reshape({0: list(clips.shape)})
        graph = quantized.quantize(graph, self.int8_weights, [clips.float().contiguous().numpy()])
        self._keep(graph, folder)
        return graph

    def _keep(self, graph, folder: Path) -> None:
        """`graph` saved into `folder`, which appears whole or not at all."""
        ov = self.openvino
        staging = None
        try:
            folder.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
            ov.save_model(graph, staging / "model.xml", compress_to_fp16=False)
            os.replace(staging, folder)  # readers see the whole folder or none
        except OSError as error:
            if not (folder / "model.xml").is_file():  # else another process kept it first
                logger.warning("inference.backend = openvino: could not keep the converted network in %s "
                               "(%s); the next run converts it again", folder, error)
        finally:
            if staging is not None and staging.exists():
                shutil.rmtree(staging, ignore_errors=True)

    def __call__(self, clips: torch.Tensor) -> torch.Tensor:
        if self.int8_weights is not None:
            self.graph, self.int8_weights = self._quantized(clips), None
        shape = tuple(clips.shape)
        request = self.requests.get(shape)
        if request is None:
            graph = self.graph.clone()
            graph.reshape({0: list(shape)})
            compiled = self.core.compile_model(graph, "CPU", {"INFERENCE_PRECISION_HINT": self.hint,
                                                              "PERFORMANCE_HINT": "LATENCY"})
            request = self.requests[shape] = compiled.create_infer_request()
        (logits,) = request.infer({0: clips.float().contiguous().numpy()}).values()
        return torch.from_numpy(logits)

