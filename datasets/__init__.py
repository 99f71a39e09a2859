"""Data sources: one table of sequence indexers and the builders that turn config into datasets.

Each indexer only knows its disk layout and returns a list of `Sequence` records; clip sampling,
transforms and the Dataset class are shared by all sources.
"""

from pathlib import Path

from datasets.clip_dataset import ClipDataset
from datasets.davis import index_davis
from datasets.fbms import index_fbms
from datasets.sequence import Sequence
from datasets.synthetic import ensure_synthetic_davis
from datasets.visal import index_visal
from utils.errors import UserError
from utils.registry import pick


def index_synthetic(root, split: str, synthetic_config) -> list[Sequence]:
    """The generated motion dataset (DAVIS layout); generated first if `root` is missing. An
    existing dataset is reused as it is, whatever `synthetic_config` says."""
    try:
        ensure_synthetic_davis(Path(root), num_train=synthetic_config.num_train,
                               num_val=synthetic_config.num_val, num_frames=synthetic_config.num_frames,
                               height=synthetic_config.height, width=synthetic_config.width,
                               seed=synthetic_config.seed)
    except ValueError as error:
        raise UserError(f"synthetic dataset: {error}") from error
    return index_davis(root, split)


DATASETS = {
    "davis": lambda root, split, data_config: index_davis(root, split),
    "synthetic": lambda root, split, data_config: index_synthetic(root, split, data_config.synthetic),
    "fbms": lambda root, split, data_config: index_fbms(root, split),
    "visal": lambda root, split, data_config: index_visal(root, split),
}


def index_sequences(data_config, which: str) -> list[Sequence]:
    """Sequences of the training ('train') or test ('test') source of a `DataConfig`."""
    kind = getattr(data_config, which)
    indexer = pick(DATASETS, kind, "dataset")
    return indexer(getattr(data_config, f"{which}_root"), getattr(data_config, f"{which}_split"),
                   data_config)


def build_train_dataset(cfg) -> ClipDataset:
    return ClipDataset(index_sequences(cfg.data, "train"), clip_length=cfg.input.clip_length,
                       max_temporal_gap=cfg.data.max_temporal_gap,
                       clips_per_sequence=cfg.data.clips_per_sequence,
                       resize_mode=cfg.input.train_resize, resize_size=cfg.input.train_size,
                       seed=cfg.seed)
