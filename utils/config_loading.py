"""Reading YAML and overrides into the config dataclasses of utils/config.py, strictly.

`merge(target, values, source)` sets a dataclass's fields from a mapping: an unknown key or a
value of the wrong type is a `UserError` that names `source` (a file, "command line"), the dotted
key and the closest valid keys. `read_config_file` reads a run config and its `_BASE_` file;
`override_mapping` reads `section.key=value`. Keys that once had a single possible value
(`OBSOLETE_KEYS`) are accepted with that value and ignored, with a warning. `check_choices`
checks every `Literal[...]` field against its values.
"""

import dataclasses
import difflib
import logging
import types
import typing
from pathlib import Path
from typing import Literal

import yaml

from utils.errors import UserError

logger = logging.getLogger(__name__)

# Removed keys -> the one value they could hold. Older config files and checkpoints name them.
OBSOLETE_KEYS = {"inference.engine": "saliency", "solver.optimizer": "adam"}


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
    `dotted`. Handles Literals (a value of their type; `check_choices` checks it is one of them),
    lists, unions (`TrainDataset | list[TrainSource]`: a list takes the list arm) and dataclasses
    (a mapping, merged strictly into a fresh instance)."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        kinds = tuple(dict.fromkeys(type(arg) for arg in typing.get_args(hint)))  # Literal[True, False, "auto"]
        return _check_value(value, kinds[0] if len(kinds) == 1 else typing.Union[kinds], source, dotted)
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
        merge(item, value, source, dotted)
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


def _skip_obsolete(dotted: str, value, source: str) -> None:
    """Accept an obsolete key holding its one value with a warning; any other value is an error."""
    only_value = OBSOLETE_KEYS[dotted]
    if value != only_value:
        raise UserError(f"{source}: '{dotted}' is obsolete and could only be {only_value!r}, "
                        f"got {value!r}; remove the key")
    logger.warning("%s: '%s' is obsolete and ignored (%s was its only value); remove the key",
                   source, dotted, only_value)


def merge(target, values, source: str, section: str = "") -> None:
    """Set the fields of dataclass `target` (the config key `section`, "" for the whole config)
    from the mapping `values`, strictly: sections merge key by key, other fields are replaced."""
    if not isinstance(values, dict):
        raise UserError(f"{source}: '{section}' must be a mapping, got {values!r}")
    prefix = f"{section}." if section else ""
    hints = typing.get_type_hints(type(target))
    for key, value in values.items():
        dotted = f"{prefix}{key}"
        if dotted in OBSOLETE_KEYS:
            _skip_obsolete(dotted, value, source)
        elif key not in hints:
            raise UserError(f"{source}: unknown key '{dotted}'{_closest(key, hints, prefix)}")
        elif dataclasses.is_dataclass(current := getattr(target, key)):
            merge(current, value, source, dotted)
        else:
            setattr(target, key, _check_value(value, hints[key], source, dotted))


def without_obsolete_keys(values: dict) -> dict:
    """A stored config (`to_dict` output of an older version) without its obsolete keys, which
    nobody can remove from a checkpoint, so they pass without a warning."""
    return {name: ({key: value for key, value in section.items() if f"{name}.{key}" not in OBSOLETE_KEYS}
                   if isinstance(section, dict) else section)
            for name, section in values.items()}


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


def read_config_file(path: Path) -> list[tuple[str, dict]]:
    """(source, mapping) of the file's `_BASE_` file, if it names one (relative to the file, one
    level deep), then of the file itself: the order in which they apply over the defaults."""
    data = _read_yaml(path)
    base = data.pop("_BASE_", None)
    if base is None:
        return [(str(path), data)]
    base_path = path.parent / base
    if base_path.name == "base.yaml" and not base_path.is_file():
        raise UserError(f"config file not found: {base_path} (run_configs/base.yaml no longer exists: the "
                        f"defaults in utils/config.py are the base; remove the _BASE_ line of {path})")
    base_data = _read_yaml(base_path)
    if "_BASE_" in base_data:
        raise UserError(f"{base_path}: _BASE_ goes one level deep; a base file cannot have one")
    return [(str(base_path), base_data), (str(path), data)]


def override_mapping(text: str) -> dict:
    """'section.key=value' -> {'section': {'key': YAML-parsed value}}."""
    if "=" not in text:
        raise UserError(f"override '{text}' must look like section.key=value")
    dotted, raw = text.split("=", 1)
    try:
        nested = yaml.safe_load(raw)
    except yaml.YAMLError as error:
        raise UserError(f"override '{text}': cannot parse the value") from error
    for part in reversed(dotted.strip().split(".")):
        nested = {part: nested}
    return nested


def literal_values(hint) -> tuple:
    """The values of a Literal hint, or of the Literal arm of a union; () for other hints."""
    if typing.get_origin(hint) is Literal:
        return typing.get_args(hint)
    return next((values for arm in typing.get_args(hint) if (values := literal_values(arm))), ())


def _spelled(choice) -> str:
    """A choice as a config file spells it (true, not True)."""
    return str(choice).lower() if isinstance(choice, bool) else str(choice)


def check_choices(section, prefix: str = "") -> None:
    """Every Literal field of the dataclass `section`, of the sections under it and of the
    sources a list holds (data.train), has one of its values."""
    for name, hint in typing.get_type_hints(type(section)).items():
        value, dotted = getattr(section, name), f"{prefix}{name}"
        if dataclasses.is_dataclass(value):
            check_choices(value, dotted + ".")
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if dataclasses.is_dataclass(item):
                    check_choices(item, f"{dotted}[{i}].")
        elif (allowed := literal_values(hint)) and value not in allowed:
            raise UserError(f"{dotted} = {value!r}; choose from {', '.join(map(_spelled, allowed))}")
