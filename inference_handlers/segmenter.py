"""Segment videos from Python (notebooks, other code) with the engine that `main.py` uses.

    from inference_handlers.segmenter import Segmenter
    segmenter = Segmenter("saved_models/demo/last.pth")      # config stored in our checkpoints
    segmenter = Segmenter("bmvc_final.pth", config="run_configs/bmvc_final.yaml", device="cuda")
    result = segmenter.segment("video.mp4")   # or a folder of frames, or (T, H, W, 3) uint8 RGB frames
    result.masks            # uint8 (T, H, W), 1 = foreground, at the frames' size
    result.probabilities    # float32 (T, H, W), foreground probability (probabilities=False: None)

The model is loaded once; `segment` can be called for any number of videos. `predictions`
streams one (frame index, mask, probability) at a time for videos too long to hold; `stream`
reads a live source (a stream URL, /dev/videoN, "-" for stdin, or a video file) and yields
(pts, mask, probability) as frames complete, under the config's inference.live settings:

    for pts, mask, probability in segmenter.stream("rtsp://camera/stream"):
        ...
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from checkpoints.weights import ModelCheckpoint, load_model, read_model_checkpoint
from datasets.live_source import open_capture
from datasets.sequence import Sequence
from datasets.transforms import crop_padding
from datasets.video import array_sequence, index_input
from inference_handlers.inference import build_engine
from inference_handlers.inference.live import stream_predictions
from utils.config import Task, apply_overrides, from_dict, load_config, validate
from utils.device import select_device
from utils.errors import UserError


@dataclass
class Segmentation:
    masks: np.ndarray                 # uint8 (T, H, W), 0 = background, 1 = foreground
    probabilities: np.ndarray | None  # float32 (T, H, W), foreground probability
    frame_names: list[str]            # names the masks get under results/ (frame stems or 00000, ...)


def config_from_checkpoint(checkpoint: ModelCheckpoint, weights, overrides=()):
    """The config stored in one of our checkpoints (read by `read_model_checkpoint`), with
    `section.key=value` overrides."""
    if checkpoint.config is None:
        raise UserError(f"{weights} stores no config (an original 3DC-Seg checkpoint?); "
                        f"pass config=, e.g. run_configs/bmvc_final.yaml")
    return apply_overrides(from_dict(checkpoint.config), overrides)


def probability_at_frame_size(prediction) -> np.ndarray:
    """float32 (h, w) foreground probability, padding cropped, bilinear resize to the frame."""
    probability = crop_padding(prediction.probabilities[1], prediction.pad).numpy().astype(np.float32)
    height, width = prediction.shape
    if probability.shape == (height, width):
        return probability
    return np.asarray(Image.fromarray(probability, mode="F").resize((width, height), Image.BILINEAR))


class Segmenter:
    """A loaded model and its sliding-window engine, configured as for `--task infer`."""

    def __init__(self, weights, config=None, overrides=(), device: str | None = None):
        overrides = list(overrides) + ([f"device={device}"] if device else [])
        checkpoint = read_model_checkpoint(weights)  # the file is read once, for its config and its weights
        cfg = (load_config(config, overrides) if config
               else config_from_checkpoint(checkpoint, weights, overrides))
        validate(cfg, Task.SEGMENT)
        self.device = select_device(cfg.device)
        model, _ = load_model(cfg.model, weights, checkpoint)
        self.config = cfg
        self.engine = build_engine(cfg, model.to(self.device), self.device)
        self.engine.model.eval()

    def sequence(self, video) -> Sequence:
        """A video file, a folder of frames or in-memory frames as a Sequence."""
        if isinstance(video, Sequence):
            return video
        if isinstance(video, (str, Path)):
            (sequence,) = index_input(video)
            return sequence
        return array_sequence(video)

    def predictions(self, video, probabilities: bool = True) -> Iterator[tuple[int, np.ndarray, np.ndarray | None]]:
        """(frame index, uint8 (H, W) mask, float32 (H, W) probability or None) per frame, in order."""
        for prediction in self.engine.predict(self.sequence(video)):
            yield (prediction.index, prediction.labels(),
                   probability_at_frame_size(prediction) if probabilities else None)

    def stream(self, source, probabilities: bool = True,
               should_stop=lambda: False) -> Iterator[tuple[float | None, np.ndarray, np.ndarray | None]]:
        """(pts in seconds or None, uint8 (H, W) mask, float32 (H, W) probability or None) of each
        frame of the live `source` that reaches the network, in order, as it completes under
        inference.live (window mode, drop policy, timeouts, reconnections; a source that does not
        open is a UserError). Ends when the source ends or stalls or `should_stop()` is true;
        closing the generator (leaving a loop over it) stops the capture."""
        capture = open_capture(str(source), self.config.inference.live)
        try:
            for frame, prediction in stream_predictions(self.engine, capture, should_stop):
                yield (frame.pts, prediction.labels(),
                       probability_at_frame_size(prediction) if probabilities else None)
                self.engine.release(prediction)
        finally:
            capture.stop()

    def segment(self, video, probabilities: bool = True) -> Segmentation:
        """Masks (and probabilities) of every frame of `video` (frames of one size)."""
        sequence = self.sequence(video)
        _, masks, maps = zip(*self.predictions(sequence, probabilities))
        names = [sequence.output_name(i, self.config.inference.mask_names) for i in range(sequence.num_frames)]
        return Segmentation(np.stack(masks), np.stack(maps) if probabilities else None, names)
