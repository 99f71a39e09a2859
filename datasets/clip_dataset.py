"""Training clips: sequences + clip sampler + transform.

A sample is a dict:
    images: float (3, T, H, W) in [0, 1], zero-padded to a multiple of 32
    masks:  uint8 (1, T, H, W) label ids (0 = background), zero-padded
    info:   {"sequence": name, "frames": list of T frame indices,
             "annotated": list of T bools, False where the frame has no ground truth (its mask is zeros)}

Every source returns this dict (COCO pseudo-clips too: datasets/coco.py), so sources mix freely.
"""

import numpy as np
import torch
from torch.utils.data import Dataset

from datasets.clip_sampling import sample_training_clip
from datasets.io import read_rgb
from datasets.transforms import build_train_transform, prepare_training_clip


class ClipDataset(Dataset):
    """One epoch = `clips_per_sequence` clips per sequence (0: one clip starting at every frame).

    Clip frames and crops are drawn from a generator seeded by (seed, epoch, item), so they are
    new every epoch, yet reproducible; call `set_epoch` before each epoch. `crop`: the crop of
    resize_short_edge_and_crop (input.train_crop, datasets.transforms.build_train_transform).
    """

    def __init__(self, sequences, *, clip_length: int, max_temporal_gap: int,
                 clips_per_sequence: int, resize_mode: str, resize_size, seed: int, crop: str = "object"):
        self.sequences = sequences
        self.clip_length = clip_length
        self.max_temporal_gap = max_temporal_gap
        self.clips_per_sequence = clips_per_sequence
        self.resize_mode = resize_mode
        self.resize_size = resize_size
        self.crop = build_train_transform(resize_mode, resize_size, crop)
        self.seed = seed
        self.epoch = 0
        self.items = self._items()

    def _items(self) -> list[tuple[int, int]]:
        """(sequence index, start frame or -1 for a random start) per sample."""
        if self.clips_per_sequence == 0:
            return [(s, start) for s, seq in enumerate(self.sequences) for start in range(seq.num_frames)]
        return [(s, -1) for s in range(len(self.sequences)) for _ in range(self.clips_per_sequence)]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, item: int) -> dict:
        return self.sample(item, np.random.default_rng((self.seed, self.epoch, item)))

    def sample(self, item: int, rng: np.random.Generator) -> dict:
        """Sample `item` with the random draws taken from `rng` (a mixture passes its own)."""
        seq_index, start = self.items[item]
        sequence = self.sequences[seq_index]
        if start < 0:
            start = int(rng.integers(sequence.num_frames))
        frames = sample_training_clip(sequence.num_frames, start, self.clip_length,
                                      self.max_temporal_gap, rng)
        images = [read_rgb(sequence.frame_paths[f]) for f in frames]
        masks = [sequence.read_mask(f, images[0].shape[:2]) for f in frames]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(rng.integers(2**31)))
            images, masks = prepare_training_clip(images, masks, self.resize_mode,
                                                  self.resize_size, self.crop)
        return {"images": images, "masks": masks,
                "info": {"sequence": sequence.name, "frames": frames,
                         "annotated": [f in sequence.mask_paths for f in frames]}}
