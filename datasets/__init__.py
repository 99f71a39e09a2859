"""Data sources: one table of sequence indexers and the builders that turn config into datasets.

Each indexer only knows its disk layout and returns a list of `Sequence` records; clip sampling,
transforms and the Dataset class are shared by all sources. COCO has no sequences: its images
become pseudo-clips (datasets/coco.py) in the same sample dict. Indexing checks what it can
cheaply (roots, lists, frames, the first frame and mask of every sequence) and fails with one
line naming the path; see `datasets.sequence.check_sequence`.
"""

import dataclasses
import logging
from pathlib import Path

from datasets.clip_dataset import ClipDataset
from datasets.coco import CocoClipDataset, index_coco
from datasets.davis import index_davis
from datasets.fbms import index_fbms
from datasets.mixture import MixtureDataset
from datasets.sequence import Sequence
from datasets.synthetic import ensure_synthetic_davis
from datasets.visal import index_visal
from datasets.youtube_vos import index_youtube_vos
from utils.config import train_sources
from utils.errors import UserError
from utils.registry import pick

logger = logging.getLogger(__name__)


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
    return [dataclasses.replace(sequence, ground_truth="synthetic (generated masks)")
            for sequence in index_davis(root, split, "unsupervised")]


DATASETS = {
    "davis": lambda root, split, data_config: index_davis(root, split, data_config.davis.annotations),
    "youtube_vos": lambda root, split, data_config: index_youtube_vos(root, split),
    "synthetic": lambda root, split, data_config: index_synthetic(root, split, data_config.synthetic),
    "fbms": lambda root, split, data_config: index_fbms(root, split),
    "visal": lambda root, split, data_config: index_visal(root, split),
}


def index_sequences(data_config, which: str) -> list[Sequence]:
    """Sequences of the training ('train', a single source) or test ('test') source of a `DataConfig`."""
    kind = getattr(data_config, which)
    if isinstance(kind, list):
        raise UserError(f"data.{which} lists several sources; build them with build_train_dataset")
    indexer = pick(DATASETS, kind, "dataset")
    return indexer(getattr(data_config, f"{which}_root"), getattr(data_config, f"{which}_split"),
                   data_config)


def warn_unannotated(sequences: list[Sequence], root) -> None:
    frames = sum(sequence.num_frames for sequence in sequences)
    missing = frames - sum(len(sequence.mask_paths) for sequence in sequences)
    if missing:
        logger.warning("%d of %d training frames in %s have no ground truth: their masks are zeros "
                       "(as in the original); info['annotated'] marks them", missing, frames, root)


def build_source(source, cfg) -> ClipDataset | CocoClipDataset:
    """The training dataset of one `TrainSource`."""
    if source.dataset == "coco":
        return CocoClipDataset(index_coco(source.root, source.split, cfg.data.coco),
                               clip_length=cfg.input.clip_length, resize_mode=cfg.input.train_resize,
                               resize_size=cfg.input.train_size, warp=cfg.data.coco.warp, seed=cfg.seed,
                               crop=cfg.input.train_crop, affine_scale=cfg.data.coco.affine_scale)
    sequences = pick(DATASETS, source.dataset, "dataset")(source.root, source.split, cfg.data)
    warn_unannotated(sequences, source.root)
    return ClipDataset(sequences, clip_length=cfg.input.clip_length,
                       max_temporal_gap=cfg.data.max_temporal_gap,
                       clips_per_sequence=cfg.data.clips_per_sequence,
                       resize_mode=cfg.input.train_resize, resize_size=cfg.input.train_size,
                       seed=cfg.seed, crop=cfg.input.train_crop)


def build_train_dataset(cfg) -> ClipDataset | CocoClipDataset | MixtureDataset:
    """The training set: one source as it is, several (data.train as a list) as a mixture.
    Each has `set_epoch`, `__len__`, `__getitem__` -> the sample dict, and `sequences`."""
    sources = [source for _, source in train_sources(cfg.data)]
    if not isinstance(cfg.data.train, list):
        return build_source(sources[0], cfg)
    datasets = [build_source(source, cfg) for source in sources]
    mixture = MixtureDataset(datasets, [source.weight for source in sources],
                             epoch_length=cfg.data.epoch_length, seed=cfg.seed)
    logger.info("training mixture: %s; %d clips per epoch",
                ", ".join(f"{source.dataset} {source.root} ({len(dataset)} items, weight {source.weight:g})"
                          for source, dataset in zip(sources, datasets)), len(mixture))
    return mixture
