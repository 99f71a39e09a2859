"""Autocast contexts for the `precision` settings (fp32 | bf16 | fp16), shared by training and
inference.

    fp32  no autocast (CUDA convolutions may still use TF32)
    bf16  bfloat16 autocast, on CUDA and on CPU; no loss scaling needed
    fp16  float16 autocast on CUDA, with a GradScaler in training (the original's apex "mixed");
          training refuses it on the CPU, inference there runs fp32 (so the paper configs, which
          say fp16, infer on any machine)
"""

import contextlib

import torch

from utils.errors import UserError

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(device: torch.device, precision: str) -> None:
    """Fail with one clear line for a precision the device cannot train with."""
    if precision == "fp16" and device.type != "cuda":
        raise UserError(f"train.precision = fp16 needs a CUDA device (device is {device.type}); "
                        f"use bf16 or fp32 on the CPU")


def autocast_for(device: torch.device, precision: str):
    """Autocast context for bf16 (CUDA or CPU) and fp16 (CUDA); fp32, and fp16 on the CPU, get none."""
    if precision not in AUTOCAST_DTYPES or (precision == "fp16" and device.type != "cuda"):
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=AUTOCAST_DTYPES[precision])


def uses_grad_scaler(device: torch.device, precision: str) -> bool:
    """Only fp16 needs loss scaling (bf16 has fp32's exponent range)."""
    return device.type == "cuda" and precision == "fp16"
