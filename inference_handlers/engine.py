"""Sliding-window inference that streams per-frame probabilities.

Each window's softmax over the two output channels is added to the running sum of every frame it
covers; a frame is averaged and handed out as soon as no later window covers it, so memory holds
at most one window of frames and sums, whatever the sequence length (SPEC 10.2-10.3).
"""

from dataclasses import dataclass
from typing import Iterator

import torch

from datasets.clip_sampling import sliding_windows, window_stride
from datasets.sequence import Sequence
from datasets.transforms import crop_padding, prepare_test_frame, resize_image, resize_labels
from utils.precision import autocast_for


@dataclass
class FramePrediction:
    index: int                  # frame index in the sequence
    probabilities: torch.Tensor  # (K, H', W') mean softmax at network resolution, padded
    pad: tuple                  # ((top, bottom), (left, right)) added before the network
    shape: tuple[int, int]      # (h, w) of the frame on disk

    def labels(self):
        """uint8 (h, w) argmax label map at the frame's original size (nearest resize)."""
        labels = crop_padding(self.probabilities.argmax(dim=0), self.pad)
        return resize_labels(labels.to(torch.uint8).numpy(), self.shape)

    def foreground_probability(self):
        """uint8 (h, w) round(255 * p) of the foreground channel (1) at the frame's original size
        (bilinear resize of the 8-bit map)."""
        levels = (crop_padding(self.probabilities[1], self.pad) * 255).round().to(torch.uint8)
        return resize_image(levels.numpy(), self.shape)


class SaliencyEngine:
    """Averages softmax probabilities over all windows that cover a frame."""

    def __init__(self, model, *, clip_length: int, clip_overlap: int, dense: bool, tail: str,
                 resize_mode: str, resize_size, device: torch.device, precision: str):
        self.model = model
        self.clip_length = clip_length
        self.stride = window_stride(clip_length, clip_overlap, dense)
        self.tail = tail
        self.resize_mode = resize_mode
        self.resize_size = resize_size
        self.device = device
        self.precision = precision

    def _load(self, frames, index: int):
        """Frame `index` as a (3, H, W) tensor on the device, its padding and its size on disk."""
        image = frames[index]
        tensor, pad = prepare_test_frame(image, self.resize_mode, self.resize_size)
        return tensor.to(self.device), pad, image.shape[:2]

    @torch.no_grad()
    def _window_probabilities(self, clip: torch.Tensor) -> torch.Tensor:
        """(3, T, H, W) -> (K, T, H, W) float32 softmax probabilities, on the device."""
        with autocast_for(self.device, self.precision):
            logits = self.model(clip[None])
        return torch.softmax(logits.float(), dim=1)[0]

    def predict(self, sequence: Sequence) -> Iterator[FramePrediction]:
        """Yield one FramePrediction per covered frame, in frame order.

        Frames and running sums stay on the device; a frame's mean moves to the CPU once.
        """
        windows = sliding_windows(sequence.num_frames, self.clip_length, self.stride, self.tail)
        with sequence.open_frames() as frames:
            yield from self._predict_windows(sequence, frames, windows)

    def _predict_windows(self, sequence: Sequence, frames, windows) -> Iterator[FramePrediction]:
        cache, sums, counts = {}, {}, {}
        for position, window in enumerate(windows):
            for frame in sorted(set(window.frames) - cache.keys()):
                cache[frame] = self._load(frames, frame)
            clip = torch.stack([cache[frame][0] for frame in window.frames], dim=1)  # (3, T, H, W)
            probabilities = self._window_probabilities(clip)                          # (K, T, H, W)
            for t, (frame, counted) in enumerate(zip(window.frames, window.counted)):
                if counted:
                    sums[frame] = probabilities[:, t] + sums[frame] if frame in sums else probabilities[:, t]
                    counts[frame] = counts.get(frame, 0) + 1
            is_last = position + 1 == len(windows)
            next_first = sequence.num_frames if is_last else min(windows[position + 1].frames)
            for frame in sorted(f for f in sums if f < next_first):
                _, pad, shape = cache[frame]
                mean = (sums.pop(frame) / counts.pop(frame)).cpu()
                yield FramePrediction(frame, mean, pad, shape)
            for frame in [f for f in cache if f < next_first]:
                del cache[frame]
