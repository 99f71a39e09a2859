"""Sliding-window inference that streams per-frame probabilities and masks.

Each window's softmax over the two output channels is added to the running sum of every frame it
covers; a frame is averaged and handed out as soon as no later window covers it, so memory holds
at most one batch of windows of frames and sums, whatever the sequence length (SPEC 10.2-10.3).

The pipeline keeps the device busy:
    reader thread   decodes and prepares frames 0, 1, 2, ... `prefetch_frames` ahead of the
                    network (background.prefetch), image files with a pool of threads
                    (background.ordered_map); for CUDA as uint8 in pinned host memory
    calling thread  copies each frame to the device once (CUDA: converts it to float there), runs `batch_size` windows per forward
                    under torch.inference_mode, the precision's autocast and, optionally,
                    channels_last_3d and torch.compile; averages, takes the argmax (for two
                    channels a comparison, `labels_of`), crops the padding and resizes the label
                    map to the frame's size on the device; clips and probabilities go into
                    buffers that every batch (on a CPU the next sequence too) reuses, and
                    everything but the network runs with one intra-op thread
                    (background.intra_op_threads); on a CPU, the memory of the frames it has used
                    goes back to the reader, and that of released means to the sums (TensorPool)
The results do not depend on batch_size or prefetch_frames (windows are summed in the same
order); the masks equal those of PIL's nearest-neighbour resize of the argmax (`nearest_indices`).
`predict` runs a sequence's windows (inference.live.window: the centered offline schedule or the
causal one); `predict_batches` runs windows handed in as frames arrive, for live sources
(inference_handlers/inference/live.py), with the same accumulation.
"""

import collections
import contextlib
import logging
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterator

import numpy as np
import torch

from datasets.clip_sampling import schedule_windows, window_stride
from datasets.sequence import Sequence
from datasets.transforms import (crop_padding, frame_tensor, padding_for, prepare_test_frame, resize_image,
                                 resized_shape)
from inference_handlers.inference.backends import OpenVinoNetwork, compile_network, prepare_model, resolved_settings
from inference_handlers.inference.background import host_workers, intra_op_threads, ordered_map, prefetch
from utils.config import InferenceConfig, InputConfig
from utils.precision import autocast_for

logger = logging.getLogger(__name__)


@dataclass
class FramePrediction:
    index: int                  # frame index in the sequence
    probabilities: torch.Tensor | None  # (K, H', W') float32 mean softmax at network resolution, padded,
                                        # on the CPU; None once released (SaliencyEngine.release)
    pad: tuple                  # ((top, bottom), (left, right)) added before the network
    shape: tuple[int, int]      # (h, w) of the frame on disk
    label_map: np.ndarray       # uint8 (h, w) argmax of the probabilities at the frame's size
    frame: np.ndarray | None = None  # uint8 (h, w, 3) the frame as read, with predict(with_frames=True)

    def labels(self) -> np.ndarray:
        """uint8 (h, w) argmax label map at the frame's original size (nearest resize)."""
        return self.label_map

    def foreground_probability(self):
        """uint8 (h, w) round(255 * p) of the foreground channel (1) at the frame's original size
        (bilinear resize of the 8-bit map)."""
        levels = (crop_padding(self.probabilities[1], self.pad) * 255).round().to(torch.uint8)
        return resize_image(levels.numpy(), self.shape)


@lru_cache(maxsize=16)
def nearest_indices(in_size: int, out_size: int) -> np.ndarray:
    """Source index of every output pixel along one axis under PIL's NEAREST resize: position
    (i + 0.5) * in_size / out_size, accumulated in float64 step by step and truncated, as
    Pillow's ImagingScaleAffine does (tests check it against PIL)."""
    scale = in_size / out_size
    steps = np.full(out_size, scale)
    steps[0] = scale * 0.5
    return np.add.accumulate(steps).astype(np.int64)


def labels_of(mean: torch.Tensor) -> torch.Tensor:
    """(K, H, W) probabilities -> uint8 (H, W) argmax over K on the same device. Two channels:
    a comparison, 10x faster on a CPU and the same labels, ties and NaN included (torch's argmax
    takes the first maximum and counts NaN as the maximum). A finite sum of the foreground
    channel proves it free of NaN, at a third of the cost of looking for one."""
    if mean.shape[0] != 2:
        return mean.argmax(dim=0).to(torch.uint8)
    background, foreground = mean
    labels = foreground > background
    if not bool(torch.isfinite(foreground.sum())):  # rare: only a network's NaN or inf gets here
        labels |= torch.isnan(foreground) & ~torch.isnan(background)
    return labels.view(torch.uint8)


def resize_labels_on(labels: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """(h', w') label map -> (h, w) on its device, the same pixels as PIL's nearest resize."""
    if tuple(labels.shape) == tuple(shape):
        return labels
    rows = torch.from_numpy(nearest_indices(labels.shape[0], shape[0])).to(labels.device)
    cols = torch.from_numpy(nearest_indices(labels.shape[1], shape[1])).to(labels.device)
    return labels.index_select(0, rows).index_select(1, cols)


class TensorPool:
    """Tensors handed back once nothing reads them, handed out again to be overwritten: on a CPU, a
    fresh tensor of a 480p frame's size (3-5 MB) costs more in page faults than filling it. The
    engine keeps two: prepared frames (for the reader's threads, frame_tensor's `out`) and the
    frames' mean probabilities (handed back by `SaliencyEngine.release`). Thread-safe (a deque's
    append and pop are atomic); it holds at most the tensors that were alive at once."""

    def __init__(self):
        self._free = collections.deque()

    def take(self) -> torch.Tensor | None:
        """A tensor handed back earlier (its shape is the caller's to check), or None."""
        try:
            return self._free.pop()
        except IndexError:
            return None

    def give(self, tensor: torch.Tensor) -> None:
        self._free.append(tensor)


class SaliencyEngine:
    """Averages softmax probabilities over all windows that cover a frame.

    From `inference`: the window schedule (clip_overlap, dense, tail), precision, batch_size
    (windows per forward), prefetch_frames (frames read ahead in a background thread; 0 = read
    in the calling thread), channels_last (network and clips in channels_last_3d), compile
    (run the network through torch.compile, falling back to eager with one warning if compiling
    fails), fold_bn and backend (`auto` values: backends.resolved_settings). From `input_config`:
    clip_length and the test-time resize (test_resize, test_size).

    The engine owns `model` and makes it ready for inference in place (BatchNorm folded, weights
    in the autocast dtype, frozen when compiled on a CPU); `live_network`: a network that is
    still trained (validation), run as it is, with the torch backend.
    """

    def __init__(self, model, inference: InferenceConfig, input_config: InputConfig, device: torch.device,
                 live_network: bool = False):
        inference = resolved_settings(inference, device, live_network)
        self.model = prepare_model(model, inference, device, live_network)
        self.clip_length = input_config.clip_length
        self.stride = window_stride(input_config.clip_length, inference.clip_overlap, inference.dense)
        self.tail = inference.tail
        self.window_mode = inference.live.window  # centered | causal (datasets.clip_sampling.schedule_windows)
        self.resize_mode = input_config.test_resize
        self.resize_size = input_config.test_size
        self.device = device
        self.precision = inference.precision
        self.batch_size = inference.batch_size
        self.prefetch_frames = inference.prefetch_frames
        self.channels_last = inference.channels_last and inference.backend == "torch"
        self.prepare_on_device = device.type == "cuda"  # frames cross as uint8, converted there
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # windows share one shape: pick the fastest kernels once
        self.openvino = (OpenVinoNetwork(self.model, inference.precision, input_config.clip_length)
                         if inference.backend == "openvino" else None)
        self.compiled = (compile_network(self.model, device, live_network)
                         if inference.compile and self.openvino is None else None)
        # On a CPU, memory is reused across frames and sequences: fresh tensors of a 480p frame's
        # size cost more in page faults than filling them. On a GPU the caching allocator reuses it
        # already, and memory the engine held could not be lent to training between validations.
        self.reuses_memory = device.type == "cpu"
        self.frame_pool = TensorPool()  # prepared frames' memory, for the reader
        self.mean_pool = TensorPool()   # the memory of released predictions' probabilities
        self.buffers = {}              # clips and probabilities of a batch (see _predict_windows)

    def _load(self, frames, index: int):
        """Frame `index` prepared, its padding, its size on disk and the frame as read. Prepared:
        a (3, H, W) float tensor (prepare_test_frame), or with prepare_on_device the resized uint8
        (H, W, 3) frame, pinned for a CUDA device: a quarter of the bytes to copy, and the float
        conversion and padding (`frame_tensor`, the same values) done by the device."""
        return self.prepare(frames[index])

    def prepare(self, image: np.ndarray):
        """`_load` of one uint8 (h, w, 3) frame: (prepared frame, padding, (h, w), the frame)."""
        if not self.prepare_on_device:
            with intra_op_threads(1):  # in a reader thread: no team of OpenMP threads spinning beside it
                tensor, pad = prepare_test_frame(image, self.resize_mode, self.resize_size, self.frame_pool.take())
            return tensor, pad, image.shape[:2], image
        frame = torch.from_numpy(resize_image(image, resized_shape(*image.shape[:2], self.resize_mode,
                                                                   self.resize_size)))
        if self.device.type == "cuda":
            frame = frame.pin_memory()
        return frame, padding_for(*frame.shape[:2]), image.shape[:2], image

    def _to_device(self, frame: torch.Tensor, pad) -> torch.Tensor:
        """A frame from `_load` as the (3, H, W) float tensor on the device."""
        frame = frame.to(self.device, non_blocking=True)
        return frame_tensor(frame, pad) if self.prepare_on_device else frame

    def _prepared_frames(self, sequence: Sequence):
        """`_load` of every frame in increasing order, from one reader (run in one thread); frames
        that can be read in any order (image files, arrays) are decoded and prepared by a pool of
        host_workers() threads when the reader runs ahead (prefetch_frames > 0)."""
        with sequence.open_frames() as frames:
            workers = host_workers() if self.prefetch_frames > 0 and getattr(frames, "any_order", False) else 1
            yield from ordered_map(lambda index: self._load(frames, index), range(sequence.num_frames), workers)

    def release(self, prediction: FramePrediction) -> None:
        """Hand back a prediction that its reader has finished with: on a CPU, a later frame's mean
        probabilities are written into its memory (`mean_pool`). Its `probabilities` become None."""
        if self.reuses_memory and prediction.probabilities is not None:
            self.mean_pool.give(prediction.probabilities)
        prediction.probabilities = None

    def _forward(self, clips: torch.Tensor) -> torch.Tensor:
        if self.openvino is not None:
            return self.openvino(clips)
        if self.compiled is not None:
            try:
                return self.compiled(clips)
            except Exception as error:  # compilation fails in many ways (toolchain, backend, lowering)
                message = (str(error).strip().splitlines() or [""])[0]
                logger.warning("inference.compile: torch.compile failed (%s: %s); running the network "
                               "eagerly", type(error).__name__, message)
                self.compiled = None
        return self.model(clips)

    def forward_windows(self, clips: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 3, T, H, W) -> (B, K, T, H, W) float32 softmax probabilities, on the device; written
        into `out` when it has their shape (the same values). The network runs with torch's intra-op threads,
        the softmax with one (`intra_op_threads`)."""
        if self.channels_last:
            clips = clips.contiguous(memory_format=torch.channels_last_3d)
        with torch.inference_mode(), autocast_for(self.device, self.precision):
            logits = self._forward(clips)
            if out is not None and out.shape != logits.shape:
                out = None  # a buffer of another shape: a fresh tensor
            with intra_op_threads(1):
                return torch.softmax(logits.float(), dim=1, out=out)

    def predict(self, sequence: Sequence, with_frames: bool = False) -> Iterator[FramePrediction]:
        """Yield one FramePrediction per covered frame, in frame order; with_frames: each carries
        its frame as read (e.g. for overlay videos, which then need not read the frames again).

        Frames and running sums stay on the device; a frame's mean and mask move to the CPU once.
        """
        windows = schedule_windows(sequence.num_frames, self.clip_length, self.stride, self.tail, self.window_mode)
        frames = prefetch(self._prepared_frames(sequence), self.prefetch_frames, name="frame-reader")
        with contextlib.closing(frames):
            yield from self.predict_batches(frames, self.batches(windows, sequence.num_frames), with_frames)

    def batches(self, windows: list, num_frames: int) -> Iterator[tuple[list, int, int]]:
        """The windows of a sequence of `num_frames` frames as `predict_batches` takes them: after
        each batch, the frames before the next batch's first frame are finished and dropped."""
        for first in range(0, len(windows), self.batch_size):
            after = first + self.batch_size
            next_first = num_frames if after >= len(windows) else min(windows[after].frames)
            yield windows[first:after], next_first, next_first

    def predict_batches(self, frames: Iterator, batches: Iterator[tuple[list, int, int]],
                        with_frames: bool) -> Iterator[FramePrediction]:
        """Predictions of the frames of `frames` (`_load`s, in frame order) under `batches`:
        (windows, finished_before, kept_from) triples, where the frames before `finished_before`
        get no more windows (their means are handed out) and the frames before `kept_from` are read
        by no later window (kept_from <= finished_before); a batch may be empty (frames finish
        without a window, e.g. when a live source's length rules a tail window out).
        The windows in batches; everything but the network with one intra-op thread
        (`intra_op_threads`). The clips and the probabilities of a batch are written into buffers
        that every batch reuses, on a CPU the next sequence's too (taken from the engine while in
        use, so that two predictions at once do not share them): on a CPU, fresh tensors of this size
        cost more in page faults than the stand-in network of `tasks.benchmark --null-network`
        computes. On a CPU the frames no window needs any more go back to the frame pool."""
        cache, sums, counts, loaded = {}, {}, {}, 0
        buffers, self.buffers = self.buffers, {}
        for batch, finished_before, kept_from in batches:
            if batch:
                with intra_op_threads(1):
                    for frame in range(loaded, max(max(window.frames) for window in batch) + 1):
                        tensor, pad, shape, image = next(frames)  # frames arrive in increasing order
                        cache[frame] = (self._to_device(tensor, pad), pad, shape, image if with_frames else None)
                        loaded = frame + 1
                    clips = self._clips(batch, cache, buffers)              # (B, 3, T, H, W)
                out = buffers.get("probabilities")
                probabilities = self.forward_windows(clips, None if out is None else out[:len(batch)])
                if out is None or probabilities.data_ptr() != out.data_ptr():       # (B, K, T, H, W)
                    buffers["probabilities"] = probabilities  # the first batch, or another shape than before
                with intra_op_threads(1):
                    self._accumulate(batch, probabilities, sums, counts, self.mean_pool)
            with intra_op_threads(1):
                finished = self._finish(sorted(f for f in sums if f < finished_before), sums, counts, cache)
            yield from finished
            for frame in [f for f in cache if f < kept_from]:
                tensor = cache.pop(frame)[0]
                if self.reuses_memory and not self.prepare_on_device:  # a frame the reader prepared
                    self.frame_pool.give(tensor)
        if self.reuses_memory:
            self.buffers = buffers

    def _clips(self, batch, cache: dict, buffers: dict) -> torch.Tensor:
        """The batch's clips of the cached frames, (B, 3, T, H, W) on the device, in
        buffers["clips"] (made anew when it is smaller or of another shape)."""
        first_frame = cache[batch[0].frames[0]][0]
        shape = (first_frame.shape[0], self.clip_length, *first_frame.shape[1:])
        clips = buffers.get("clips")
        if (clips is None or clips.shape[0] < len(batch) or clips.shape[1:] != shape
                or clips.dtype != first_frame.dtype or clips.device != first_frame.device):
            buffers["clips"] = clips = first_frame.new_empty((len(batch), *shape))
        clips = clips[:len(batch)]
        for clip, window in zip(clips, batch):
            torch.stack([cache[frame][0] for frame in window.frames], dim=1, out=clip)  # one copy per frame
        return clips

    @staticmethod
    def _accumulate(batch, probabilities: torch.Tensor, sums: dict, counts: dict, pool: TensorPool) -> None:
        """Add each window's probabilities of its counted frames to their sums, window by window
        (x + y == y + x exactly: the sums are those of the windows' order); a frame's first sum is
        a copy, into a tensor from `pool` when it has one of that shape."""
        for window, window_probabilities in zip(batch, probabilities):
            for t, (frame, counted) in enumerate(zip(window.frames, window.counted)):
                if counted:
                    if frame in sums:
                        sums[frame].add_(window_probabilities[:, t])
                    else:
                        used = pool.take()  # the window's probabilities are in a buffer, reused
                        first = window_probabilities[:, t]
                        sums[frame] = first.clone() if used is None or used.shape != first.shape else used.copy_(first)
                    counts[frame] = counts.get(frame, 0) + 1

    def _finish(self, finished: list[int], sums: dict, counts: dict, cache: dict) -> list[FramePrediction]:
        """Means and label maps of the finished frames, computed on the device, moved together."""
        if not finished:
            return []
        means = [sums.pop(frame).div_(counts.pop(frame)) for frame in finished]  # F x (K, H', W')
        label_maps = [resize_labels_on(crop_padding(labels_of(mean), cache[frame][1]), cache[frame][2]).contiguous()
                      for frame, mean in zip(finished, means)]
        if self.device.type != "cpu":
            means = torch.stack(means).cpu()  # one transfer
        return [FramePrediction(frame, mean, cache[frame][1], cache[frame][2], label_map.cpu().numpy(),
                                cache[frame][3])
                for frame, mean, label_map in zip(finished, means, label_maps)]
