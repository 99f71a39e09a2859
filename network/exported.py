"""The network as one graph (torch.export) for deployment and other runtimes: `tasks.export`
writes it to files, the OpenVINO backend (inference_handlers/inference/backends.py) converts it in memory.

The graph takes a float clip (N, 3, T, H, W) in [0, 1] with T fixed and N, H, W dynamic (H and W
multiples of 32) and returns logits (N, num_classes, T, H, W).
"""

import torch

MAX_SIDE_BLOCKS = 128  # H and W up to 128 * 32 = 4096 pixels


def dynamic_shapes() -> dict:
    """Batch, height and width dynamic; height and width stay multiples of 32."""
    height = torch.export.Dim("height_blocks", min=1, max=MAX_SIDE_BLOCKS)
    width = torch.export.Dim("width_blocks", min=1, max=MAX_SIDE_BLOCKS)
    batch = torch.export.Dim("batch", min=1, max=64)
    return {"clip": {0: batch, 3: 32 * height, 4: 32 * width}}


def example_clip(clip_length: int) -> torch.Tensor:
    """Tracing input: batch 2 and 64 x 64 so that no dynamic size specialises to 0 or 1."""
    return torch.rand(2, 3, clip_length, 64, 64)


def export_program(model: torch.nn.Module, clip_length: int) -> torch.export.ExportedProgram:
    """`torch.export` of the network for clips of `clip_length` frames (N, H, W dynamic)."""
    return torch.export.export(model, (example_clip(clip_length),), dynamic_shapes=dynamic_shapes())
