import dataclasses
import logging
import typing

import pytest
import yaml

import main
from datasets import DATASETS
from datasets.davis import ANNOTATION_DIRS
from inference_handlers.evaluation.protocols import FRAME_SETS, PROTOCOLS
from loss import LOSSES
from network import BACKBONES, INTER_BLOCKS, REFINE_BLOCKS
from network.resnet3d import CONV_INITS
from tasks.schedule import LR_SCHEDULES
from utils.config import Config, Task, choices, from_dict, load_config, to_dict, validate
from utils.errors import UserError
from utils.precision import AUTOCAST_DTYPES

from support.paths import REPO_ROOT, TINY_CONFIG


def write(tmp_path, text, name="run.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_run_config_inherits_base_and_overrides(tmp_path):
    write(tmp_path, "name: base\ntrain: {epochs: 7, batch_size: 3}\n", "base.yaml")
    cfg = load_config(write(tmp_path, "_BASE_: base.yaml\nname: mine\ntrain: {epochs: 2}\n"))
    assert (cfg.name, cfg.train.epochs, cfg.train.batch_size) == ("mine", 2, 3)
    assert cfg.solver.base_lr == Config().solver.base_lr


def test_unknown_key_names_file_dotted_key_and_suggestion(tmp_path):
    path = write(tmp_path, "inference:\n  clip_overlp: 2\n")
    with pytest.raises(UserError) as error:
        load_config(path)
    message = str(error.value)
    assert str(path) in message and "inference.clip_overlp" in message and "clip_overlap" in message


def test_wrong_type_is_an_error(tmp_path):
    with pytest.raises(UserError, match="train.epochs"):
        load_config(write(tmp_path, "train: {epochs: many}\n"))
    with pytest.raises(UserError, match="inference.dense"):
        load_config(write(tmp_path, "inference: {dense: 1}\n"))


def test_int_accepted_where_float_expected(tmp_path):
    cfg = load_config(write(tmp_path, "solver: {base_lr: 1}\n"))
    assert cfg.solver.base_lr == 1.0 and isinstance(cfg.solver.base_lr, float)


def test_exponent_without_dot_is_a_float(tmp_path):
    cfg = load_config(write(tmp_path, "solver: {base_lr: 1e-4}\n"), ["solver.lr_gamma=5e-1"])
    assert cfg.solver.base_lr == 1e-4 and cfg.solver.lr_gamma == 0.5
    with pytest.raises(UserError, match="solver.base_lr"):
        load_config(write(tmp_path, "solver: {base_lr: fast}\n"))


def test_cli_overrides_are_typed_and_checked(tmp_path):
    path = write(tmp_path, "name: x\n")
    cfg = load_config(path, ["inference.dense=true", "model.depths=[1,1,1,1]"])
    assert cfg.inference.dense is True and cfg.model.depths == [1, 1, 1, 1]
    with pytest.raises(UserError, match="command line.*inference.denser"):
        load_config(path, ["inference.denser=true"])
    with pytest.raises(UserError, match="section.key=value"):
        load_config(path, ["inference.dense"])


def test_base_may_not_chain(tmp_path):
    write(tmp_path, "_BASE_: other.yaml\n", "base.yaml")
    with pytest.raises(UserError, match="one level"):
        load_config(write(tmp_path, "_BASE_: base.yaml\n"))


def test_a_config_naming_the_removed_base_yaml_is_told_to_drop_the_line(tmp_path):
    path = write(tmp_path, "_BASE_: base.yaml\nname: x\n")
    with pytest.raises(UserError, match=r"config file not found: .*base\.yaml .*remove the _BASE_ line"):
        load_config(path)


def differences(values: dict, defaults: dict) -> dict:
    """The entries of the nested mapping `values` that differ from `defaults`, nested alike."""
    changed = {}
    for key, value in values.items():
        if isinstance(value, dict) and isinstance(defaults[key], dict):
            if nested := differences(value, defaults[key]):
                changed[key] = nested
        elif value != defaults[key]:
            changed[key] = value
    return changed


@pytest.mark.parametrize("path", sorted((REPO_ROOT / "run_configs").glob("*.yaml")), ids=lambda path: path.name)
def test_run_configs_state_exactly_their_differences_from_the_defaults(path):
    stated = yaml.safe_load(path.read_text())
    assert stated == differences(to_dict(load_config(path)), to_dict(Config()))


def test_obsolete_single_value_keys_are_ignored_with_a_warning(tmp_path, caplog):
    path = write(tmp_path, "name: x\ninference: {engine: saliency, dense: true}\nsolver: {optimizer: adam}\n")
    with caplog.at_level(logging.WARNING, logger="utils.config_loading"):
        cfg = load_config(path, ["inference.engine=saliency"])
    assert cfg == load_config(write(tmp_path, "name: x\ninference: {dense: true}\n", "plain.yaml"))
    assert [record.getMessage() for record in caplog.records] == [
        f"{path}: 'inference.engine' is obsolete and ignored (saliency was its only value); remove the key",
        f"{path}: 'solver.optimizer' is obsolete and ignored (adam was its only value); remove the key",
        "command line: 'inference.engine' is obsolete and ignored (saliency was its only value); remove the key"]
    with pytest.raises(UserError, match=r"'solver\.optimizer' is obsolete and could only be 'adam', got 'sgd'"):
        load_config(write(tmp_path, "solver: {optimizer: sgd}\n"))


def test_a_stored_config_of_an_older_version_loads_without_warnings(caplog):
    stored = to_dict(load_config(TINY_CONFIG))
    stored["inference"]["engine"], stored["solver"]["optimizer"] = "saliency", "adam"
    with caplog.at_level(logging.WARNING):
        assert from_dict(stored) == load_config(TINY_CONFIG)
    assert not caplog.records


def test_no_key_has_a_single_possible_value():
    def keys(section, prefix=""):
        for name, hint in typing.get_type_hints(section).items():
            yield from keys(hint, f"{prefix}{name}.") if dataclasses.is_dataclass(hint) else [prefix + name]
    assert [key for key in keys(Config) if len(choices(key)) == 1] == []


def test_validate_checks_enums_and_overlap(tmp_path):
    cfg = load_config(TINY_CONFIG)
    cfg.inference.clip_overlap = cfg.input.clip_length
    with pytest.raises(UserError, match="clip_overlap"):
        validate(cfg, Task.INFER)
    cfg = load_config(TINY_CONFIG, ["train.precision=fp8"])
    with pytest.raises(UserError, match="train.precision"):
        validate(cfg, Task.TRAIN)


def test_validate_checks_only_the_roots_the_task_reads(tmp_path):
    cfg = load_config(TINY_CONFIG, [f"data.test_root={tmp_path}", "data.train_root=/nonexistent/x"])
    validate(cfg, Task.INFER)
    with pytest.raises(UserError, match="data.train_root"):
        validate(cfg, Task.TRAIN)


def test_config_round_trips_through_dict():
    cfg = load_config(TINY_CONFIG)
    assert from_dict(to_dict(cfg)) == cfg


@pytest.mark.parametrize("name", ["demo", "bmvc_final", "bmvc_final_dense", "bmvc_fbms", "bmvc_visal"])
def test_shipped_run_configs_load(name):
    cfg = load_config(REPO_ROOT / "run_configs" / f"{name}.yaml")
    assert cfg.name == name
    assert not any(part.startswith("/") for part in (cfg.data.train_root, cfg.data.test_root))


def test_paper_config_values():
    cfg = load_config(REPO_ROOT / "run_configs" / "bmvc_final.yaml")
    assert cfg.model.depths == [3, 8, 36, 3] and cfg.model.width == 64
    assert cfg.input.clip_length == 8 and cfg.inference.clip_overlap == 3
    assert cfg.data.max_temporal_gap == 12 and cfg.solver.base_lr == 5e-5 and cfg.train.batch_size == 2
    assert cfg.input.test_size == [480] and cfg.input.test_resize == "resize_short_edge"
    assert load_config(REPO_ROOT / "run_configs" / "bmvc_final_dense.yaml").inference.dense is True


def test_data_train_may_list_weighted_sources(tmp_path):
    path = write(tmp_path, "data:\n  train:\n    - {dataset: coco, root: c, split: train2017, weight: 0.25}\n"
                           "    - {dataset: youtube_vos, root: y, split: train, weight: 1}\n  epoch_length: 100\n")
    cfg = load_config(path)
    assert [(s.dataset, s.root, s.split, s.weight) for s in cfg.data.train] == [
        ("coco", "c", "train2017", 0.25), ("youtube_vos", "y", "train", 1.0)]
    assert from_dict(to_dict(cfg)) == cfg
    assert load_config(path, ["data.train=davis"]).data.train == "davis"  # one source stays one line


def test_unknown_key_inside_a_source_names_its_position(tmp_path):
    with pytest.raises(UserError, match=r"unknown key 'data\.train\[1\]\.wieght'; did you mean data\.train\[1\]\.weight"):
        load_config(write(tmp_path, "data: {train: [{dataset: coco}, {dataset: davis, wieght: 2}]}\n"))
    with pytest.raises(UserError, match="'data.train': expected str or a list"):
        load_config(write(tmp_path, "data: {train: 3}\n"))


def test_a_section_or_source_given_a_plain_value_names_its_key(tmp_path):
    with pytest.raises(UserError, match=r"run\.yaml: 'data\.coco' must be a mapping, got \[1\]$"):
        load_config(write(tmp_path, "data: {coco: [1]}\n"))
    with pytest.raises(UserError, match=r"run\.yaml: 'data\.train\[0\]' must be a mapping, got 3$"):
        load_config(write(tmp_path, "data: {train: [3]}\n"))
    with pytest.raises(UserError, match=r"^command line: 'model' must be a mapping, got 3$"):
        load_config(write(tmp_path, "name: x\n"), ["model=3"])

def test_validate_checks_every_source_of_a_mixture(tmp_path):
    sources = f"[{{dataset: davis, root: {tmp_path}}}, {{dataset: coco, root: {tmp_path / 'missing'}}}]"
    cfg = load_config(TINY_CONFIG, [f"data.train={sources}", f"data.test_root={tmp_path}"])
    with pytest.raises(UserError, match=r"data\.train\[1\]\.root: folder not found"):
        validate(cfg, Task.TRAIN)
    validate(cfg, Task.INFER)
    cfg = load_config(TINY_CONFIG, [f"data.train=[{{dataset: cocoa, root: {tmp_path}}}]"])
    with pytest.raises(UserError, match=r"data\.train\[0\]\.dataset = 'cocoa'"):
        validate(cfg, Task.TRAIN)
    cfg = load_config(TINY_CONFIG, [f"data.train=[{{dataset: davis, root: {tmp_path}, weight: 0}}]"])
    with pytest.raises(UserError, match=r"data\.train\[0\]\.weight must be positive"):
        validate(cfg, Task.TRAIN)


@pytest.mark.parametrize(("key", "names"), [
    ("model.backbone", BACKBONES), ("model.inter_block", INTER_BLOCKS), ("model.refine_block", REFINE_BLOCKS),
    ("model.encoder_init", CONV_INITS), ("data.test", DATASETS),
    ("data.train", [*DATASETS, "coco"]),  # COCO images become pseudo-clips (datasets.build_train_dataset)
    ("data.davis.annotations", ["auto", *ANNOTATION_DIRS]), ("train.loss", LOSSES),
    ("solver.lr_schedule", LR_SCHEDULES), ("train.precision", ["fp32", *AUTOCAST_DTYPES]),
    ("inference.precision", ["fp32", *AUTOCAST_DTYPES, "int8"]),  # int8: the openvino backend's (backends.runtime)
    ("inference.protocol", ["auto", *PROTOCOLS]), ("inference.eval_frames", FRAME_SETS),
])
def test_config_choices_are_the_names_of_the_packages_tables(key, names):
    assert sorted(choices(key)) == sorted(names)


def test_validate_names_the_key_and_its_choices_at_any_depth():
    cfg = load_config(TINY_CONFIG, ["data.coco.warp=sideways"])
    with pytest.raises(UserError) as error:
        validate(cfg, Task.INFER)
    assert str(error.value) == "data.coco.warp = 'sideways'; choose from before_padding, after_padding"
    with pytest.raises(UserError, match="'data.coco.warp': expected str, got 3"):
        load_config(TINY_CONFIG, ["data.coco.warp=3"])


def test_command_line_tasks_become_task_members_with_their_spelling(capsys):
    for name in ("train", "infer", "eval"):
        assert main.parse_args(["-c", "run.yaml", "--task", name]).task is Task(name)
    with pytest.raises(SystemExit):
        main.parse_args(["-c", "run.yaml", "--task", "benchmark"])
    assert "invalid choice: 'benchmark' (choose from 'train', 'infer', 'eval')" in capsys.readouterr().err


def test_task_is_required_and_its_absence_is_one_error_line_naming_the_tasks(tmp_path, monkeypatch, capsys):
    """No default task: a command without --task used to start a training."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_status:
        main.main(["-c", str(TINY_CONFIG), "name=x"])
    assert exit_status.value.code == 2
    assert capsys.readouterr().err == "error: --task is required: one of train, infer, eval\n"
    assert list(tmp_path.iterdir()) == []  # nothing trained, nothing written
