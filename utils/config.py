"""Typed, strict YAML configuration.

A run config lists only its differences from `run_configs/base.yaml` (`_BASE_: base.yaml`, one
level deep). Loading is strict: an unknown key or a value of the wrong type is a `UserError` that
names the file, the dotted key and the closest valid keys. Command-line overrides
(`inference.dense=true`) go through the same checks. `validate(cfg, task)` checks enums (a
field's allowed values are its `Literal[...]` type, the one source of them: `choices(key)`),
cross-field rules and the paths the task needs.
"""

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Literal

import yaml

from utils.errors import UserError

Precision = Literal["fp32", "bf16", "fp16"]
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
    backbone: Literal["csn_ir", "csn_ip", "resnet", "resnet_basic"] = "csn_ir"  # encoder: csn_ir (paper) | csn_ip | resnet (bottleneck 3D ResNet) | resnet_basic (basic-block 3D ResNet); docs/models.md
    depths: list[int] = field(default_factory=lambda: [3, 8, 36, 3])  # blocks per stage; 3,8,36,3 = ir-CSN-152
    width: int = 64  # stem channels = bottleneck width of stage 1 (stage s uses width * 2**s)
    decoder_width: int = 256  # channels inside the decoder (inter and refine blocks)
    inter_block: Literal["GC3d", "C3D", "NL", "ASPP"] = "GC3d"  # decoder block on r5: GC3d (paper) | C3D | NL | ASPP
    refine_block: Literal["Refine3d", "Refine2plus1d", "Refine3dLight", "Refine3dLightGN", "Refine3dDG",
                          "Refine3dConvTranspose", "RefineSimple"] = "Refine3d"  # decoder merge blocks: Refine3d (paper) | Refine2plus1d | Refine3dLight | Refine3dLightGN | Refine3dDG | Refine3dConvTranspose | RefineSimple
    encoder_init: Literal["he", "original"] = "he"  # random init of encoder convs: he = Normal(0, sqrt(2/(kT*kH*kW*out))) | original = sqrt(2/(kT*kH*out)), kernel width left out, CSN stem PyTorch default
    num_classes: int = 2  # output channels; channel 1 is the foreground
    bn_mode: Literal["frozen", "train", "sync"] = "frozen"  # frozen: encoder BatchNorm in eval mode, no gradient | train: BN trains | sync: BN trains, statistics over all processes (SyncBatchNorm; CUDA under torchrun, else as train)
    bn_eps: float = 1e-5  # BatchNorm epsilon (the original runs with 1e-5; caffe2 weights used 1e-3)
    pixel_mean: list[float] = field(default_factory=lambda: [114.7748, 107.7354, 99.4750])  # RGB, 0-255 scale
    pixel_std: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])  # RGB, 0-255 scale; original: 1
    backbone_weights: str = ""  # encoder weights loaded at the start of training ("" = random init)


@dataclass
class InputConfig:
    clip_length: int = 8  # frames per clip (T)
    train_resize: Literal["unchanged", "fixed_size", "resize_short_edge", "resize_short_edge_and_crop"] = "resize_short_edge_and_crop"  # training frames: unchanged | fixed_size (to train_size) | resize_short_edge (to min(train_size)) | resize_short_edge_and_crop (then a train_size crop, input.train_crop)
    train_size: list[int] = field(default_factory=lambda: [480, 854])  # (H, W) target of train_resize, pixels
    train_crop: Literal["object", "original", "uniform"] = "object"  # crop of resize_short_edge_and_crop, one per clip: object (the box of the clip's masks stays inside; empty masks: top-left, as the original) | original (the original's bounds, obj_w_min bug included, SPEC 11 defect 17) | uniform (anywhere, blind to the masks)
    test_resize: Literal["unchanged", "fixed_size", "resize_short_edge"] = "resize_short_edge"  # test frames, as train_resize with test_size
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
class TrainSource:
    dataset: TrainDataset = "davis"  # this source's dataset, as data.train
    root: str = "data/DAVIS"  # folder of this source, as downloaded (docs/data.md)
    split: str = "2017/train.txt"  # as data.train_split for this dataset
    weight: float = 1.0  # relative sampling weight: share of the epoch's clips = weight / sum of weights


@dataclass
class DavisConfig:
    annotations: Literal["auto", "unsupervised", "semi_supervised"] = "auto"  # auto | unsupervised (Annotations_unsupervised/480p) | semi_supervised (Annotations/480p, objects merged); auto: Annotations/480p for 2016 splits when present (DAVIS-2016 ground truth), else Annotations_unsupervised/480p when present, else Annotations/480p


@dataclass
class CocoConfig:
    annotation_file: str = "annotations/instances_{split}.json"  # relative to the root; {split} = the source's split (original: split train -> instances_train.json)
    image_folders: list[str] = field(default_factory=lambda: ["{split}"])  # relative to the root; an image is read from the first folder whose name occurs in its file name, else from the first (original: [train2014, val2014])
    categories: list[str] = field(default_factory=list)  # category names to keep (e.g. [person, car]); [] = all 80
    category_filter: Literal["annotations", "images"] = "annotations"  # how categories filter: annotations (drop the others' annotations) | images (original COCOv2 list: keep every annotation of an image that has a listed category)
    min_box_size: float = 30.0  # annotations whose box is narrower or lower than this are dropped, pixels (original: 30)
    warp: Literal["before_padding", "after_padding"] = "before_padding"  # before_padding: pseudo-clip warps of the image only | after_padding: warps of the zero-padded image (original, SPEC 11 defect 18)
    affine_scale: Literal["anisotropic", "isotropic"] = "anisotropic"  # pseudo-clip affine scale: anisotropic (x and y drawn independently in 0.7-1.3, original) | isotropic (one factor for both)


@dataclass
class DataConfig:
    train: TrainDataset | list[TrainSource] = "davis"  # training dataset: davis | youtube_vos | coco | fbms | visal | synthetic, or a list of sources (a mixture; then train_root / train_split are not read)
    train_root: str = "data/DAVIS"  # folder of the training dataset
    train_split: str = "2017/train.txt"  # DAVIS: list under ImageSets/; YouTube-VOS: train | valid | train_all_frames; COCO: e.g. train2017; FBMS: Trainingset | Testset; ViSal: unused
    test: Literal["davis", "youtube_vos", "fbms", "visal", "synthetic"] = "davis"  # validation / inference dataset: davis | youtube_vos | synthetic | fbms | visal
    test_root: str = "data/DAVIS"  # folder of the test dataset
    test_split: str = "2016/val.txt"  # as train_split
    max_temporal_gap: int = 12  # a training clip draws clip_length frames from this many frames after its start
    clips_per_sequence: int = 0  # training clips per sequence and epoch; 0 = one per frame (original); COCO: one per image
    epoch_length: int = 0  # clips per epoch of a mixture (data.train as a list); 0 = the sum of its sources' own epoch lengths
    davis: DavisConfig = field(default_factory=DavisConfig)  # which DAVIS annotations are read
    coco: CocoConfig = field(default_factory=CocoConfig)  # COCO files, filtering and pseudo-clip warps
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)  # generated when a root is missing


@dataclass
class TrainConfig:
    epochs: int = 100  # training epochs
    batch_size: int = 2  # clips per optimiser step (per process)
    precision: Precision = "fp32"  # fp32 | bf16 | fp16 autocast for training (inference: inference.precision); bf16 also on CPU; fp16 (the original's apex "mixed"): CUDA with a GradScaler (CPU: training refuses it, inference runs fp32)
    loss: Literal["ce", "bce_fg"] = "ce"  # ce: two-class cross-entropy | bce_fg: original BCE on the foreground channel only
    validate_every: int = 1  # epochs between validations on the test set (0 = never); best.pth keeps the best score
    init_weights: str = ""  # checkpoint whose weights start a fresh run, e.g. the previous recipe stage's best.pth ("" = none; --wts overrides it)
    resume: bool = True  # true: continue from saved_models/<name>/last.pth when it exists | false: start over, overwriting it
    checkpoint_every: int = 0  # iterations between extra last.pth writes inside an epoch (0 = at epoch ends only)
    snapshot_every: int = 0  # epochs between epoch_NNN.pth snapshots, NNN = epochs done (0 = none)
    log_every: int = 50  # iterations between log lines (loss of every rank, IoU, lr, time)
    image_every: int = 500  # iterations between tensorboard images of a training clip (0 = never)
    val_images: int = 3  # validation frames logged to tensorboard as frame | ground truth | prediction (val/<sequence>/<frame>, the same frames every validation; 0 = none)
    max_skipped_steps: int = 100  # stop after this many consecutive skipped steps (fp16: overflowing gradients; fp32/bf16: non-finite ones)


@dataclass
class SolverConfig:
    optimizer: Literal["adam"] = "adam"  # adam (the original's only choice)
    base_lr: float = 1e-4  # learning rate before any decay
    weight_decay: float = 0.0  # Adam weight decay (original: 0)
    lr_schedule: Literal["step", "poly", "cosine"] = "step"  # step: per epoch, lr_milestones (original) | poly: (1 - progress) ** poly_power | cosine: half cosine to 0; poly and cosine per iteration
    lr_milestones: list[int] = field(default_factory=lambda: [10])  # step: lr *= lr_gamma for every epoch after each milestone
    lr_gamma: float = 0.1  # step: decay factor at each milestone
    poly_power: float = 0.9  # poly: exponent
    warmup_iterations: int = 0  # linear warm-up from warmup_factor * lr to the schedule's lr over this many iterations (0 = none)
    warmup_factor: float = 0.001  # lr multiplier at the first warm-up iteration
    clip_grad_norm: float = 0.0  # clip the gradients' global L2 norm to this value (0 = no clipping; original: none)


@dataclass
class InferenceConfig:
    engine: Literal["saliency"] = "saliency"  # inference engine: saliency (sliding-window softmax averaging)
    clip_overlap: int = 3  # frames shared by consecutive windows; windows start every clip_length - clip_overlap frames
    dense: bool = False  # true: a window starts at every frame
    mask_names: Literal["frame_name", "original_index"] = "frame_name"  # output PNG names: frame_name (the frame's file stem) | original_index (original: 5-digit frame number; FBMS number in the name, else position)
    tail: Literal["shift_back", "repeat_first"] = "shift_back"  # windows at the end: shift_back (full windows, each frame counted once) | repeat_first (original: pad with copies of the window's first frame, every copy counts)
    protocol: Literal["auto", "davis2016", "fbms", "saliency"] = "auto"  # scoring: davis2016 (J, F, J&F) | fbms (J over annotated frames) | saliency (MAE, max F_beta, S) | auto: from data.test (davis, synthetic -> davis2016; fbms -> fbms; visal -> saliency)
    eval_frames: Literal["all", "skip_first_last"] = "all"  # annotated frames scored: all (davis2017-evaluation) | skip_first_last (DAVIS-2016 Matlab toolkit, VSOD toolboxes)
    save_probs: bool = False  # also write results/<name>/probs/<sequence>/<frame>.png: 8-bit round(255 * foreground probability)
    overlay: bool = False  # also write results/<name>/overlays/<sequence>.mp4: frames with the mask tinted and outlined (H.264)
    overwrite: bool = False  # false: a re-run skips sequences whose outputs are complete | true: predict every sequence again
    precision: Precision = "fp32"  # fp32 | bf16 | fp16 autocast for inference and validation, separate from train.precision; bf16 also on CPU; fp16 on the CPU runs fp32
    batch_size: int = 1  # sliding windows per forward pass (results do not depend on it)
    channels_last: bool = False  # network and clips in the channels_last_3d memory format (faster bf16 convolutions on CPU; Tensor Cores on CUDA)
    compile: bool = False  # run the network through torch.compile (first windows compile; falls back to eager with a warning when compiling fails)
    prefetch_frames: int = 16  # frames decoded and prepared ahead of the network by a background thread (0 = in the main thread)
    write_queue: int = 16  # predictions queued for the background thread that writes masks and scores (0 = in the main thread)
    report: bool = True  # --task infer also writes results/<name>/report.html (plots, worst frames) and per_frame.json (per-frame files and scores)


@dataclass
class LoaderConfig:
    num_workers: int = 2  # DataLoader worker processes for training


@dataclass
class Config:
    name: str = "default"  # run name: saved_models/<name>/ and results/<name>/
    device: Literal["auto", "cpu", "cuda"] = "auto"  # where the network runs: cpu | cuda | auto (cuda when available, else cpu)
    seed: int = 0  # seed for weights init and clip sampling
    model: ModelConfig = field(default_factory=ModelConfig)
    input: InputConfig = field(default_factory=InputConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    solver: SolverConfig = field(default_factory=SolverConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    loader: LoaderConfig = field(default_factory=LoaderConfig)


def _closest(key: str, valid, prefix: str) -> str:
    """'; did you mean section.key?' for the closest valid keys, else the list of valid keys."""
    matches = difflib.get_close_matches(key, list(valid), n=3, cutoff=0.5)
    if matches:
        return f"; did you mean {' or '.join(prefix + match for match in matches)}?"
    return f"; valid keys: {', '.join(prefix + name for name in valid)}"


def _type_name(hint) -> str:
    if typing.get_origin(hint) is list:
        return "a list"
    if typing.get_origin(hint) is Literal:
        return type(typing.get_args(hint)[0]).__name__
    return "a mapping" if dataclasses.is_dataclass(hint) else hint.__name__


def _check_value(value, hint, source: str, dotted: str):
    """Return `value` converted to the type `hint`, or raise a UserError naming `source` and
    `dotted`. Handles Literals (a value of their type; `validate` checks it is one of them), lists,
    unions (`TrainDataset | list[TrainSource]`: a list takes the list arm) and dataclasses (a
    mapping, merged strictly into a fresh instance)."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        return _check_value(value, type(typing.get_args(hint)[0]), source, dotted)
    if origin is typing.Union or origin is types.UnionType:
        arms = typing.get_args(hint)
        list_arms = [arm for arm in arms if typing.get_origin(arm) is list]
        if isinstance(value, (list, tuple)) and list_arms:
            return _check_value(value, list_arms[0], source, dotted)
        for arm in arms:
            if arm not in list_arms:
                try:
                    return _check_value(value, arm, source, dotted)
                except UserError:
                    pass
        raise UserError(f"{source}: '{dotted}': expected {' or '.join(map(_type_name, arms))}, got {value!r}")
    if origin is list:
        (item_hint,) = typing.get_args(hint)
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{source}: '{dotted}': expected a list, got {value!r}")
        return [_check_value(item, item_hint, source, f"{dotted}[{i}]") for i, item in enumerate(value)]
    if dataclasses.is_dataclass(hint):
        item = hint()
        _merge(item, value, source, dotted)
        return item
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if (hint is int and isinstance(value, bool)) or not isinstance(value, hint):
        raise UserError(f"{source}: '{dotted}': expected {hint.__name__}, got {value!r}")
    return value


def _merge(target, values, source: str, section: str = "") -> None:
    """Set the fields of dataclass `target` (the config key `section`, "" for the whole config)
    from the mapping `values`, strictly: sections merge key by key, other fields are replaced."""
    if not isinstance(values, dict):
        raise UserError(f"{source}: '{section}' must be a mapping, got {values!r}")
    prefix = f"{section}." if section else ""
    hints = typing.get_type_hints(type(target))
    for key, value in values.items():
        dotted = f"{prefix}{key}"
        if key not in hints:
            raise UserError(f"{source}: unknown key '{dotted}'{_closest(key, hints, prefix)}")
        current = getattr(target, key)
        if dataclasses.is_dataclass(current):
            _merge(current, value, source, dotted)
        else:
            setattr(target, key, _check_value(value, hints[key], source, dotted))


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
    return apply_overrides(cfg, overrides)


def apply_overrides(cfg: Config, overrides) -> Config:
    """Set `section.key=value` overrides on `cfg` (in place, returned), checked like the YAML."""
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


def train_sources(data: DataConfig) -> list[tuple[str, TrainSource]]:
    """(config key of its root, source) for every training source; a single `data.train` name
    becomes one source of weight 1 from data.train_root and data.train_split."""
    if isinstance(data.train, list):
        return [(f"data.train[{i}].root", source) for i, source in enumerate(data.train)]
    return [("data.train_root", TrainSource(data.train, data.train_root, data.train_split, 1.0))]


def _literal_values(hint) -> tuple:
    """The values of a Literal hint, or of the Literal arm of a union; () for other hints."""
    if typing.get_origin(hint) is Literal:
        return typing.get_args(hint)
    return next((values for arm in typing.get_args(hint) if (values := _literal_values(arm))), ())


def choices(dotted: str) -> tuple:
    """The values a config key allows, from its Literal type, e.g. choices("inference.protocol")."""
    hint = Config
    for part in dotted.split("."):
        hint = typing.get_type_hints(hint)[part]
    return _literal_values(hint)


def _check_choices(section, prefix: str = "") -> None:
    """Every Literal field of the dataclass `section`, of the sections under it and of the
    sources a list holds (data.train), has one of its values."""
    for name, hint in typing.get_type_hints(type(section)).items():
        value, dotted = getattr(section, name), f"{prefix}{name}"
        if dataclasses.is_dataclass(value):
            _check_choices(value, dotted + ".")
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if dataclasses.is_dataclass(item):
                    _check_choices(item, f"{dotted}[{i}].")
        elif (allowed := _literal_values(hint)) and value not in allowed:
            raise UserError(f"{dotted} = {value!r}; choose from {', '.join(allowed)}")


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
    `input_path`, the video or frame folder of `--input`, no data root; training reads the test
    root only when it validates)."""
    _check_choices(cfg)
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
    if input_path is not None and not Path(input_path).exists():
        raise UserError(f"--input: no such file or folder: {input_path}")
    if task is Task.TRAIN and cfg.model.backbone_weights and not Path(cfg.model.backbone_weights).is_file():
        raise UserError(f"model.backbone_weights: file not found: {cfg.model.backbone_weights}")
