"""The training dataset draws new clips every epoch, the same ones for the same epoch and seed
(slow: it reads every clip of the mini DAVIS tree twice per epoch)."""

import pytest

from datasets.clip_dataset import ClipDataset
from datasets.davis import index_davis


@pytest.mark.slow
def test_clip_dataset_redraws_clips_every_epoch_reproducibly(mini_davis):
    def frames(epoch):
        dataset = ClipDataset(index_davis(mini_davis, "2017/train.txt"), clip_length=4,
                              max_temporal_gap=10, clips_per_sequence=0, resize_mode="unchanged",
                              resize_size=[64], seed=0)
        dataset.set_epoch(epoch)
        return [tuple(dataset[i]["info"]["frames"]) for i in range(len(dataset))]
    assert frames(0) == frames(0) and frames(0) != frames(1)
