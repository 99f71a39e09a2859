"""Autocast contexts for the `precision` settings (fp32 | bf16 | fp16), shared by training and
inference."""

import contextlib

import torch

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_for(device: torch.device, precision: str):
    """Autocast context for bf16 / fp16 on CUDA; fp32 (and every CPU run) gets none."""
    if device.type != "cuda" or precision not in AUTOCAST_DTYPES:
        return contextlib.nullcontext()
    return torch.autocast(device_type="cuda", dtype=AUTOCAST_DTYPES[precision])
