"""The `device` setting (auto | cpu | cuda) as a torch.device, for the command line and the
Python segmenter alike."""

import torch

from utils.errors import UserError


def select_device(name: str) -> torch.device:
    """cuda or cpu as named; auto: cuda when a CUDA device is available, else cpu."""
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("device = cuda, but no CUDA device is available (use device=auto or cpu)")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)
