"""Several training sources in one epoch, drawn by weight.

Item i of epoch e draws from a generator seeded by (seed, e, i): first its source (probability
weight / sum of weights), then an item of that source, then that item's clip. The sample
depends on (seed, epoch, item) only, so it is the same under any sampler (shuffled,
DistributedSampler) and new every epoch.
"""

import numpy as np
from torch.utils.data import Dataset


class MixtureDataset(Dataset):
    """`sources`: datasets with `sample(item, rng)`, `__len__` and `sequences`; `weights`:
    relative sampling weights; `epoch_length`: items per epoch (0 = sum of the sources' lengths)."""

    def __init__(self, sources: list, weights: list[float], *, epoch_length: int, seed: int):
        self.sources = sources
        total = float(sum(weights))
        self.probabilities = np.array([weight / total for weight in weights])
        self.length = epoch_length or sum(len(source) for source in sources)
        self.seed = seed
        self.epoch = 0

    @property
    def sequences(self) -> list:
        """Every source's sequences (COCO: images), for counting."""
        return [sequence for source in self.sources for sequence in source.sequences]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def draw(self, item: int) -> tuple[int, int, np.random.Generator]:
        """(source index, item of that source, generator for its clip) of `item` this epoch."""
        rng = np.random.default_rng((self.seed, self.epoch, item))
        source = int(rng.choice(len(self.sources), p=self.probabilities))
        return source, int(rng.integers(len(self.sources[source]))), rng

    def __getitem__(self, item: int) -> dict:
        source, source_item, rng = self.draw(item)
        return self.sources[source].sample(source_item, rng)
