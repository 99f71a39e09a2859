"""Typed, strict YAML configuration.

The dataclasses below hold every key, its default and its meaning. The defaults are the paper's
network, input and DAVIS setting (the original's bmvc_final.yaml: DAVIS-16 val, 8 of the next 12
frames, 2 clips per process); its learning rate, precision, backbone file and output quirks are
stated in run_configs/bmvc_final.yaml. A run config lists only its differences from the defaults;
a `_BASE_: file.yaml` line (one level deep, relative to the config) puts a file of shared
differences in between. Loading is strict (utils/config_loading.py): an unknown key or a value of
the wrong type is a `UserError` that names the file, the dotted key and the closest valid keys.
Command-line overrides (`inference.dense=true`) go through the same checks. `validate(cfg, task)`
checks enums (a field's allowed values are its `Literal[...]` type, the one source of them:
`choices(key)`), cross-field rules and the paths the task needs.
"""

import dataclasses
import glob
import typing
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Literal

import yaml

from utils.config_loading import (check_choices, literal_values, merge, override_mapping, read_config_file,
                                  without_obsolete_keys)
from utils.config_live import LiveConfig, is_live_input, validate_live
from utils.errors import UserError

Precision = Literal["fp32", "bf16", "fp16"]
InferencePrecision = Literal["fp32", "bf16", "fp16", "int8"]
TrainDataset = Literal["davis", "youtube_vos", "coco", "fbms", "visal", "synthetic"]


class Task(StrEnum):
    """What a run does: `validate` checks the paths it reads, `setup_run` picks its folder and log."""
    TRAIN = "train"          # main.py --task train
    INFER = "infer"          # main.py --task infer
    EVAL = "eval"            # main.py --task eval
    BENCHMARK = "benchmark"  # python -m tasks.benchmark
    EXPORT = "export"        # python -m tasks.export
    SEGMENT = "segment"      # inference_handlers.segmenter.Segmenter (Python API)


@dataclass
class ModelConfig:
    # encoder: csn_ir (the paper's ir-CSN) | csn_ip | resnet | resnet_basic (docs/models.md)
    backbone: Literal["csn_ir", "csn_ip", "resnet", "resnet_basic"] = "csn_ir"
    # blocks per encoder stage; [3, 8, 36, 3] = ir-CSN-152
    depths: list[int] = field(default_factory=lambda: [3, 8, 36, 3])
    # stem channels = bottleneck width of stage 1 (stage s uses width * 2**s)
    width: int = 64
    # channels inside the decoder (inter and refine blocks)
    decoder_width: int = 256
    # decoder block on the last encoder stage: GC3d (paper) | C3D | NL | ASPP
    inter_block: Literal["GC3d", "C3D", "NL", "ASPP"] = "GC3d"
    # decoder blocks that merge the encoder stages: Refine3d (paper) or a variant
    refine_block: Literal["Refine3d", "Refine2plus1d", "Refine3dLight", "Refine3dLightGN", "Refine3dDG",
                          "Refine3dConvTranspose", "RefineSimple"] = "Refine3d"
    # random init of encoder convs: he | original (the original's fan, kernel width left out)
    encoder_init: Literal["he", "original"] = "he"
    # output channels; channel 1 is the foreground
    num_classes: int = 2
    # encoder BatchNorm: frozen (eval mode, no gradient) | train | sync (statistics over processes)
    bn_mode: Literal["frozen", "train", "sync"] = "frozen"
    # BatchNorm epsilon (the original runs with 1e-5; caffe2 weights used 1e-3)
    bn_eps: float = 1e-5
    # per-channel input mean subtracted, RGB, 0-255 scale
    pixel_mean: list[float] = field(default_factory=lambda: [114.7748, 107.7354, 99.4750])
    # per-channel input divisor, RGB, 0-255 scale (original: 1)
    pixel_std: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])
    # encoder weights loaded at the start of training ("" = random init)
    backbone_weights: str = ""


@dataclass
class InputConfig:
    # frames per clip (T)
    clip_length: int = 8
    # training frames: unchanged | fixed_size | resize_short_edge | resize_short_edge_and_crop
    train_resize: Literal["unchanged", "fixed_size", "resize_short_edge",
                          "resize_short_edge_and_crop"] = "resize_short_edge_and_crop"
    # (H, W) target of train_resize, pixels
    train_size: list[int] = field(default_factory=lambda: [480, 854])
    # crop of resize_short_edge_and_crop, one per clip: object | original | uniform
    train_crop: Literal["object", "original", "uniform"] = "object"
    # test frames: as train_resize, to test_size
    test_resize: Literal["unchanged", "fixed_size", "resize_short_edge"] = "resize_short_edge"
    # (H, W), or (short edge,), pixels
    test_size: list[int] = field(default_factory=lambda: [480])


@dataclass
class SyntheticConfig:
    # training sequences generated
    num_train: int = 300
    # validation sequences generated
    num_val: int = 30
    # frames per sequence
    num_frames: int = 16
    # frame height, pixels
    height: int = 64
    # frame width, pixels
    width: int = 96
    # generator seed (same seed, same files)
    seed: int = 0


@dataclass
class TrainSource:
    # this source's dataset, as data.train
    dataset: TrainDataset = "davis"
    # folder of this source, as downloaded (docs/data.md)
    root: str = "data/DAVIS"
    # as data.train_split for this dataset
    split: str = "2017/train.txt"
    # relative sampling weight: share of the epoch's clips = weight / sum of weights
    weight: float = 1.0


@dataclass
class DavisConfig:
    # auto | unsupervised (Annotations_unsupervised/480p) | semi_supervised (Annotations/480p)
    annotations: Literal["auto", "unsupervised", "semi_supervised"] = "auto"


@dataclass
class CocoConfig:
    # relative to the root; {split} = the source's split
    annotation_file: str = "annotations/instances_{split}.json"
    # relative to the root; {split} as above (the original's: [train2014, val2014])
    image_folders: list[str] = field(default_factory=lambda: ["{split}"])
    # category names to keep (e.g. [person, car]); [] = all 80
    categories: list[str] = field(default_factory=list)
    # annotations (drop other categories' annotations) | images (keep images with a listed one)
    category_filter: Literal["annotations", "images"] = "annotations"
    # annotations whose box is narrower or lower than this are dropped, pixels (original: 30)
    min_box_size: float = 30.0
    # pseudo-clip warps of: before_padding (the image) | after_padding (the padded image, original)
    warp: Literal["before_padding", "after_padding"] = "before_padding"
    # pseudo-clip scale: anisotropic (x, y drawn apart in 0.7-1.3, original) | isotropic
    affine_scale: Literal["anisotropic", "isotropic"] = "anisotropic"


@dataclass
class DataConfig:
    # training dataset: davis | youtube_vos | coco | fbms | visal | synthetic, or a list of sources
    train: TrainDataset | list[TrainSource] = "davis"
    # folder of the training dataset
    train_root: str = "data/DAVIS"
    # the training split; what it names depends on the dataset (docs/data.md)
    train_split: str = "2017/train.txt"
    # validation / inference dataset: davis | youtube_vos | fbms | visal | synthetic
    test: Literal["davis", "youtube_vos", "fbms", "visal", "synthetic"] = "davis"
    # folder of the test dataset
    test_root: str = "data/DAVIS"
    # as train_split; DAVIS-16 val is the paper's benchmark
    test_split: str = "2016/val.txt"
    # a training clip draws clip_length frames from this many frames after its start
    max_temporal_gap: int = 12
    # training clips per sequence and epoch; 0 = one per frame (original; COCO: one per image)
    clips_per_sequence: int = 0
    # clips per epoch of a mixture (data.train a list); 0 = the sum of its sources' epochs
    epoch_length: int = 0
    # which DAVIS annotations are read
    davis: DavisConfig = field(default_factory=DavisConfig)
    # COCO files, filtering and pseudo-clip warps
    coco: CocoConfig = field(default_factory=CocoConfig)
    # the synthetic dataset, generated when a root is missing
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)


@dataclass
class TrainConfig:
    # training epochs
    epochs: int = 100
    # clips per optimiser step, per process
    batch_size: int = 2
    # training autocast: fp32 | bf16 | fp16 (the original's apex "mixed"; CUDA, with a GradScaler)
    precision: Precision = "fp32"
    # ce: two-class cross-entropy | bce_fg: the original's BCE on the foreground channel only
    loss: Literal["ce", "bce_fg"] = "ce"
    # epochs between validations on the test set (0 = never); best.pth keeps the best score
    validate_every: int = 1
    # checkpoint whose weights start a fresh run ("" = none; --wts overrides it)
    init_weights: str = ""
    # true: continue from saved_models/<name>/last.pth when it exists | false: start over
    resume: bool = True
    # iterations between extra last.pth writes inside an epoch (0 = at epoch ends only)
    checkpoint_every: int = 0
    # epochs between epoch_NNN.pth snapshots, NNN = epochs done (0 = none)
    snapshot_every: int = 0
    # iterations between log lines (loss of every rank, IoU, lr, time)
    log_every: int = 50
    # iterations between tensorboard images of a training clip (0 = never)
    image_every: int = 500
    # validation frames logged to tensorboard as frame | ground truth | prediction (0 = none)
    val_images: int = 3
    # stop after this many consecutive skipped steps (overflowing or non-finite gradients)
    max_skipped_steps: int = 100


@dataclass
class SolverConfig:
    # Adam's learning rate before any decay
    base_lr: float = 1e-4
    # Adam weight decay (original: 0)
    weight_decay: float = 0.0
    # step: per epoch at lr_milestones (original) | poly | cosine: per iteration, to 0
    lr_schedule: Literal["step", "poly", "cosine"] = "step"
    # step: lr *= lr_gamma for every epoch after each milestone
    lr_milestones: list[int] = field(default_factory=lambda: [10])
    # step: decay factor at each milestone
    lr_gamma: float = 0.1
    # poly: lr factor (1 - progress) ** poly_power
    poly_power: float = 0.9
    # linear warm-up from warmup_factor * lr to the schedule's lr, iterations (0 = none)
    warmup_iterations: int = 0
    # lr multiplier at the first warm-up iteration
    warmup_factor: float = 0.001
    # clip the gradients' global L2 norm to this value (0 = no clipping, as the original)
    clip_grad_norm: float = 0.0


@dataclass
class InferenceConfig:
    # frames shared by consecutive windows; windows start every clip_length - clip_overlap frames
    clip_overlap: int = 3
    # true: a window starts at every frame
    dense: bool = False
    # output PNG names: frame_name (the frame's file stem) | original_index (the original's numbers)
    mask_names: Literal["frame_name", "original_index"] = "frame_name"
    # windows at the end: shift_back (full windows) | repeat_first (the original's padding)
    tail: Literal["shift_back", "repeat_first"] = "shift_back"
    # scoring: davis2016 (J, F, J&F) | fbms (J) | saliency (MAE, F, S) | auto (from data.test)
    protocol: Literal["auto", "davis2016", "fbms", "saliency"] = "auto"
    # annotated frames scored: all (davis2017-evaluation) | skip_first_last (DAVIS-2016 Matlab)
    eval_frames: Literal["all", "skip_first_last"] = "all"
    # also write results/<name>/probs/<sequence>/<frame>.png: 8-bit foreground probability
    save_probs: bool = False
    # also write results/<name>/overlays/<sequence>.mp4: frames with the mask tinted (H.264)
    overlay: bool = False
    # false: a re-run skips sequences whose outputs are complete | true: predict every sequence
    overwrite: bool = False
    # fp32 | bf16 | fp16 (CUDA) | int8 (CPU, openvino: heaviest convolutions int8, rest bf16)
    precision: InferencePrecision = "fp32"
    # sliding windows per forward pass (results do not depend on it)
    batch_size: int = 1
    # channels_last_3d memory format; auto: on for bf16 with the torch backend on the CPU only
    channels_last: Literal[True, False, "auto"] = "auto"
    # run the network through torch.compile (eager, with a warning, when compiling fails)
    compile: bool = False
    # BatchNorm folded into the convolution before it (not in validation during training)
    fold_bn: bool = True
    # auto (openvino for int8, else torch) | torch | openvino (CPU, requirements-openvino.txt)
    backend: Literal["auto", "torch", "openvino"] = "auto"
    # frames prepared ahead of the network by a background thread (0 = in the main thread)
    prefetch_frames: int = 16
    # predictions queued for the background writer thread (0 = in the main thread)
    write_queue: int = 16
    # --task infer also writes results/<name>/report.html and per_frame.json
    report: bool = True
    # live sources and the window mode (utils/config_live.py)
    live: LiveConfig = field(default_factory=LiveConfig)


@dataclass
class LoaderConfig:
    # DataLoader worker processes for training, per process (results do not depend on it)
    num_workers: int = 8


@dataclass
class Config:
    # run name: saved_models/<name>/ and results/<name>/
    name: str = "default"
    # where the network runs: cpu | cuda | auto (cuda when available, else cpu)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # seed for weight init and clip sampling
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    input: InputConfig = field(default_factory=InputConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    solver: SolverConfig = field(default_factory=SolverConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    loader: LoaderConfig = field(default_factory=LoaderConfig)


def load_config(path, overrides=()) -> Config:
    """Defaults <- the `_BASE_` file, if named <- the file <- command-line overrides."""
    cfg = Config()
    for source, values in read_config_file(Path(path)):
        merge(cfg, values, source)
    return apply_overrides(cfg, overrides)


def apply_overrides(cfg: Config, overrides) -> Config:
    """Set `section.key=value` overrides on `cfg` (in place, returned), checked like the YAML."""
    for text in overrides:
        merge(cfg, override_mapping(text), "command line")
    return cfg


def to_dict(cfg: Config) -> dict:
    return dataclasses.asdict(cfg)


def from_dict(values: dict) -> Config:
    """Rebuild a Config from `to_dict` output (e.g. the copy stored in a checkpoint)."""
    cfg = Config()
    merge(cfg, without_obsolete_keys(values), "stored config")
    return cfg


def dump_yaml(cfg: Config) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def _get(cfg: Config, dotted: str):
    value = cfg
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def train_sources(data: DataConfig) -> list[tuple[str, TrainSource]]:
    """(config key of its root, source) for every training source; a single `data.train` name
    becomes one source of weight 1 from data.train_root and data.train_split."""
    if isinstance(data.train, list):
        return [(f"data.train[{i}].root", source) for i, source in enumerate(data.train)]
    return [("data.train_root", TrainSource(data.train, data.train_root, data.train_split, 1.0))]


def choices(dotted: str) -> tuple:
    """The values a config key allows, from its Literal type, e.g. choices("inference.protocol")."""
    hint = Config
    for part in dotted.split("."):
        hint = typing.get_type_hints(hint)[part]
    return literal_values(hint)


def _validate_data(data: DataConfig, reads_train: bool, reads_test: bool) -> None:
    """Mixture rules, and the data roots that are read."""
    if isinstance(data.train, list):
        if not data.train:
            raise UserError("data.train: a list of sources needs at least one source")
        for i, source in enumerate(data.train):
            if not source.weight > 0:
                raise UserError(f"data.train[{i}].weight must be positive, got {source.weight}")
    if data.epoch_length < 0:
        raise UserError(f"data.epoch_length must be >= 0, got {data.epoch_length}")
    roots = [(key, source.dataset, source.root) for key, source in train_sources(data)] if reads_train else []
    roots += [("data.test_root", data.test, data.test_root)] if reads_test else []
    for key, kind, root in roots:
        if kind != "synthetic" and not Path(root).is_dir():
            raise UserError(f"{key}: folder not found: {root} (see docs/data.md)")


def validate(cfg: Config, task: Task, input_path: str | None = None) -> None:
    """Check enums and cross-field rules; check only the paths that `task` reads (with
    `input_path`, the video or frame folder of `--input`, no data root; a list file (@list.txt) or
    glob is checked by datasets.corpus; training reads the test root only when it validates)."""
    check_choices(cfg)
    if cfg.input.clip_length < 1:
        raise UserError("input.clip_length must be at least 1")
    if not 0 <= cfg.inference.clip_overlap < cfg.input.clip_length:
        raise UserError(f"inference.clip_overlap must satisfy 0 <= clip_overlap < input.clip_length "
                        f"({cfg.inference.clip_overlap} vs {cfg.input.clip_length})")
    if cfg.inference.batch_size < 1 or cfg.inference.prefetch_frames < 0 or cfg.inference.write_queue < 0:
        raise UserError(f"inference.batch_size must be >= 1, inference.prefetch_frames and inference.write_queue "
                        f">= 0 (got {cfg.inference.batch_size}, {cfg.inference.prefetch_frames}, "
                        f"{cfg.inference.write_queue})")
    if len(cfg.model.depths) != 4 or min(cfg.model.depths) < 1:
        raise UserError(f"model.depths needs four positive stage depths, got {cfg.model.depths}")
    if cfg.model.refine_block == "Refine3dConvTranspose" and cfg.input.clip_length % 8:
        raise UserError(f"model.refine_block Refine3dConvTranspose doubles T at every level, so "
                        f"input.clip_length must be a multiple of 8, got {cfg.input.clip_length}")
    for key in ("input.train_size", "input.test_size"):
        if len(_get(cfg, key)) not in (1, 2) or min(_get(cfg, key)) < 1:
            raise UserError(f"{key} must be [height, width] or [short_edge], got {_get(cfg, key)}")
    if cfg.train.batch_size < 1 or cfg.train.epochs < 0:
        raise UserError("train.batch_size must be >= 1 and train.epochs >= 0")
    for key in ("train.validate_every", "train.checkpoint_every", "train.snapshot_every", "train.image_every",
                "train.val_images", "solver.warmup_iterations"):
        if _get(cfg, key) < 0:
            raise UserError(f"{key} must be >= 0, got {_get(cfg, key)}")
    if cfg.train.log_every < 1 or cfg.train.max_skipped_steps < 1:
        raise UserError("train.log_every and train.max_skipped_steps must be >= 1")
    if not 0 < cfg.solver.warmup_factor <= 1 or cfg.solver.poly_power <= 0 or cfg.solver.clip_grad_norm < 0:
        raise UserError("solver.warmup_factor must be in (0, 1], solver.poly_power > 0, solver.clip_grad_norm >= 0")
    validating = task is Task.TRAIN and cfg.train.validate_every > 0
    _validate_data(cfg.data, reads_train=input_path is None and task is Task.TRAIN,
                   reads_test=input_path is None and (task in (Task.INFER, Task.EVAL) or validating))
    validate_live(cfg.inference.live)
    named_later = input_path is not None and (input_path[:1] == "@" or glob.has_magic(input_path) or is_live_input(input_path))
    if input_path is not None and not named_later and not Path(input_path).exists():
        raise UserError(f"--input: no such file or folder: {input_path}")
    if task is Task.TRAIN and cfg.model.backbone_weights and not Path(cfg.model.backbone_weights).is_file():
        raise UserError(f"model.backbone_weights: file not found: {cfg.model.backbone_weights}")
