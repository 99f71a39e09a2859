"""Typed, strict YAML configuration.

A run config lists only its differences from `run_configs/base.yaml` (`_BASE_: base.yaml`, one
level deep). Loading is strict: an unknown key or a value of the wrong type is a `UserError` that
names the file, the dotted key and the closest valid keys. Command-line overrides
(`inference.dense=true`) go through the same checks. `validate(cfg, task)` checks enums,
cross-field rules and the paths the task needs.
"""

import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from utils.errors import UserError


@dataclass
class ModelConfig:
    backbone: str = "csn_ir"  # encoder family: csn_ir = interaction-reduced channel-separated 3D ResNet
    depths: list[int] = field(default_factory=lambda: [3, 8, 36, 3])  # blocks per stage; 3,8,36,3 = ir-CSN-152
    width: int = 64  # stem channels = bottleneck width of stage 1 (stage s uses width * 2**s)
    decoder_width: int = 256  # channels inside the decoder (GC3d, Refine3d)
    num_classes: int = 2  # output channels; channel 1 is the foreground
    bn_mode: str = "frozen"  # frozen: encoder BatchNorm in eval mode, no gradient | train: BN trains
    bn_eps: float = 1e-5  # BatchNorm epsilon (the original runs with 1e-5; caffe2 weights used 1e-3)
    pixel_mean: list[float] = field(default_factory=lambda: [114.7748, 107.7354, 99.4750])  # RGB, 0-255 scale
    pixel_std: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])  # RGB, 0-255 scale; original: 1
    backbone_weights: str = ""  # encoder weights loaded at the start of training ("" = random init)


@dataclass
class InputConfig:
    clip_length: int = 8  # frames per clip (T)
    train_resize: str = "resize_short_edge_and_crop"  # unchanged | fixed_size | resize_short_edge | resize_short_edge_and_crop
    train_size: list[int] = field(default_factory=lambda: [480, 854])  # (H, W) target of train_resize, pixels
    test_resize: str = "resize_short_edge"  # unchanged | fixed_size | resize_short_edge
    test_size: list[int] = field(default_factory=lambda: [480])  # (H, W), or (short edge,), pixels


@dataclass
class SyntheticConfig:
    num_train: int = 300  # training sequences generated
    num_val: int = 30  # validation sequences generated
    num_frames: int = 16  # frames per sequence
    height: int = 64  # frame height, pixels
    width: int = 96  # frame width, pixels
    seed: int = 0  # generator seed (same seed, same files)


@dataclass
class DataConfig:
    train: str = "davis"  # training dataset: davis | synthetic | fbms | visal
    train_root: str = "data/DAVIS"  # folder of the training dataset
    train_split: str = "2017/train.txt"  # DAVIS: list under ImageSets/; FBMS: Trainingset | Testset; ViSal: unused
    test: str = "davis"  # validation / inference dataset: davis | synthetic | fbms | visal
    test_root: str = "data/DAVIS"  # folder of the test dataset
    test_split: str = "2016/val.txt"  # DAVIS: list under ImageSets/; FBMS: Trainingset | Testset; ViSal: unused
    max_temporal_gap: int = 12  # a training clip draws clip_length frames from this many frames after its start
    clips_per_sequence: int = 0  # training clips per sequence and epoch; 0 = one per frame (original)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)  # generated when a root is missing


@dataclass
class TrainConfig:
    epochs: int = 100  # training epochs
    batch_size: int = 2  # clips per optimiser step (per process)
    precision: str = "fp32"  # fp32 | bf16 | fp16 autocast for training and inference (CUDA only; CPU runs fp32)
    loss: str = "ce"  # ce: two-class cross-entropy | bce_fg: original BCE on the foreground channel only
    validate_every: int = 1  # epochs between validations on the test set (0 = never)


@dataclass
class SolverConfig:
    optimizer: str = "adam"  # adam (the original's only choice)
    base_lr: float = 1e-4  # learning rate before any decay
    weight_decay: float = 0.0  # Adam weight decay (original: 0)
    lr_milestones: list[int] = field(default_factory=lambda: [10])  # lr *= lr_gamma for every epoch after each milestone
    lr_gamma: float = 0.1  # decay factor at each milestone


@dataclass
class InferenceConfig:
    engine: str = "saliency"  # inference engine: saliency (sliding-window softmax averaging)
    clip_overlap: int = 3  # frames shared by consecutive windows; windows start every clip_length - clip_overlap frames
    dense: bool = False  # true: a window starts at every frame
    mask_names: str = "frame_name"  # output PNG names: frame_name (the frame's file stem) | original_index (original: 5-digit frame number; FBMS number in the name, else position)
    tail: str = "shift_back"  # windows at the end: shift_back (full windows, each frame counted once) | repeat_first (original: pad with copies of the window's first frame, every copy counts)


@dataclass
class LoaderConfig:
    num_workers: int = 2  # DataLoader worker processes for training


@dataclass
class Config:
    name: str = "default"  # run name: saved_models/<name>/ and results/<name>/
    device: str = "auto"  # auto | cpu | cuda
    seed: int = 0  # seed for weights init and clip sampling
    model: ModelConfig = field(default_factory=ModelConfig)
    input: InputConfig = field(default_factory=InputConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    solver: SolverConfig = field(default_factory=SolverConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    loader: LoaderConfig = field(default_factory=LoaderConfig)


CHOICES = {
    "device": ("auto", "cpu", "cuda"),
    "model.backbone": ("csn_ir",),
    "model.bn_mode": ("frozen", "train"),
    "input.train_resize": ("unchanged", "fixed_size", "resize_short_edge", "resize_short_edge_and_crop"),
    "input.test_resize": ("unchanged", "fixed_size", "resize_short_edge"),
    "data.train": ("davis", "synthetic", "fbms", "visal"),
    "data.test": ("davis", "synthetic", "fbms", "visal"),
    "train.precision": ("fp32", "bf16", "fp16"),
    "train.loss": ("ce", "bce_fg"),
    "solver.optimizer": ("adam",),
    "inference.engine": ("saliency",),
    "inference.tail": ("shift_back", "repeat_first"),
    "inference.mask_names": ("frame_name", "original_index"),
}


def _closest(key: str, valid, prefix: str) -> str:
    """'; did you mean section.key?' for the closest valid keys, else the list of valid keys."""
    matches = difflib.get_close_matches(key, list(valid), n=3, cutoff=0.5)
    if matches:
        return f"; did you mean {' or '.join(prefix + match for match in matches)}?"
    return f"; valid keys: {', '.join(prefix + name for name in valid)}"


def _check_value(value, hint, where: str):
    """Return `value` converted to the type `hint`, or raise a UserError naming `where`."""
    origin = typing.get_origin(hint)
    if origin is list:
        (item_hint,) = typing.get_args(hint)
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{where}: expected a list, got {value!r}")
        return [_check_value(item, item_hint, f"{where}[{i}]") for i, item in enumerate(value)]
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if hint is int and isinstance(value, bool) or not isinstance(value, hint):
        raise UserError(f"{where}: expected {hint.__name__}, got {value!r}")
    return value


def _merge(target, values: dict, source: str, prefix: str = "") -> None:
    """Set the fields of dataclass `target` from the mapping `values`, strictly."""
    hints = typing.get_type_hints(type(target))
    for key, value in values.items():
        dotted = f"{prefix}{key}"
        if key not in hints:
            raise UserError(f"{source}: unknown key '{dotted}'{_closest(key, hints, prefix)}")
        current = getattr(target, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise UserError(f"{source}: '{dotted}' must be a mapping, got {value!r}")
            _merge(current, value, source, dotted + ".")
        else:
            setattr(target, key, _check_value(value, hints[key], f"{source}: '{dotted}'"))


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"config file not found: {path}")
    try:
        with open(path) as handle:
            data = yaml.safe_load(handle) or {}
    except yaml.YAMLError as error:
        raise UserError(f"{path}: invalid YAML: {str(error).splitlines()[0]}") from error
    if not isinstance(data, dict):
        raise UserError(f"{path}: the top level must be a mapping")
    return data


def parse_override(text: str) -> tuple[str, object]:
    """'section.key=value' -> ('section.key', YAML-parsed value)."""
    if "=" not in text:
        raise UserError(f"override '{text}' must look like section.key=value")
    key, raw = text.split("=", 1)
    try:
        return key.strip(), yaml.safe_load(raw)
    except yaml.YAMLError as error:
        raise UserError(f"override '{text}': cannot parse the value") from error


def _nest(dotted: str, value) -> dict:
    nested = value
    for part in reversed(dotted.split(".")):
        nested = {part: nested}
    return nested


def load_config(path, overrides=()) -> Config:
    """Defaults <- base file (`_BASE_`) <- the file <- command-line overrides."""
    path = Path(path)
    data = _read_yaml(path)
    cfg = Config()
    base = data.pop("_BASE_", None)
    if base is not None:
        base_path = path.parent / base
        base_data = _read_yaml(base_path)
        if "_BASE_" in base_data:
            raise UserError(f"{base_path}: _BASE_ goes one level deep; a base file cannot have one")
        _merge(cfg, base_data, str(base_path))
    _merge(cfg, data, str(path))
    for text in overrides:
        key, value = parse_override(text)
        _merge(cfg, _nest(key, value), "command line")
    return cfg


def to_dict(cfg: Config) -> dict:
    return dataclasses.asdict(cfg)


def from_dict(values: dict) -> Config:
    """Rebuild a Config from `to_dict` output (e.g. the copy stored in a checkpoint)."""
    cfg = Config()
    _merge(cfg, values, "stored config")
    return cfg


def dump_yaml(cfg: Config) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def _get(cfg: Config, dotted: str):
    value = cfg
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def validate(cfg: Config, task: str) -> None:
    """Check enums and cross-field rules; check only the paths that `task` reads."""
    for dotted, choices in CHOICES.items():
        if _get(cfg, dotted) not in choices:
            raise UserError(f"{dotted} = {_get(cfg, dotted)!r}; choose from {', '.join(choices)}")
    if cfg.input.clip_length < 1:
        raise UserError("input.clip_length must be at least 1")
    if not 0 <= cfg.inference.clip_overlap < cfg.input.clip_length:
        raise UserError(f"inference.clip_overlap must satisfy 0 <= clip_overlap < input.clip_length "
                        f"({cfg.inference.clip_overlap} vs {cfg.input.clip_length})")
    if len(cfg.model.depths) != 4 or min(cfg.model.depths) < 1:
        raise UserError(f"model.depths needs four positive stage depths, got {cfg.model.depths}")
    for key in ("input.train_size", "input.test_size"):
        if len(_get(cfg, key)) not in (1, 2) or min(_get(cfg, key)) < 1:
            raise UserError(f"{key} must be [height, width] or [short_edge], got {_get(cfg, key)}")
    if cfg.train.batch_size < 1 or cfg.train.epochs < 0:
        raise UserError("train.batch_size must be >= 1 and train.epochs >= 0")
    roots = {"train": ("train", "test"), "infer": ("test",), "eval": ("test",), "benchmark": ()}[task]
    for split in roots:
        kind, root = _get(cfg, f"data.{split}"), Path(_get(cfg, f"data.{split}_root"))
        if kind != "synthetic" and not root.is_dir():
            raise UserError(f"data.{split}_root: folder not found: {root} "
                            f"(see README, section Data)")
    if task == "train" and cfg.model.backbone_weights and not Path(cfg.model.backbone_weights).is_file():
        raise UserError(f"model.backbone_weights: file not found: {cfg.model.backbone_weights}")
