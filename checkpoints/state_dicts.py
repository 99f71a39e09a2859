"""State dicts compared with the model they are for: names without the `module.` / `_orig_mod.`
prefixes, and the missing, unexpected and mis-shaped tensors listed in one line.

checkpoints/weights.py (every weight format) and checkpoints/training.py (resuming a run) load
with these checks, so that a file that does not fit the model is one UserError naming all its
problems.
"""

from collections import OrderedDict
from dataclasses import dataclass

import torch

from utils.errors import UserError

PREFIXES = ("module.", "_orig_mod.")  # (Distributed)DataParallel, torch.compile
LISTED_NAMES = 5


def listing(names, limit: int = LISTED_NAMES) -> str:
    """The first `limit` names, comma-separated, and how many more there are."""
    names = list(names)
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown}, ... (+{len(names) - limit} more)"


@dataclass
class StateDiff:
    """Differences between the tensors a model expects and those a file provides."""
    missing: list[str]
    unexpected: list[str]
    mismatched: list[str]  # "name: file [..], model [..]"

    def problems(self) -> list[str]:
        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} missing ({listing(self.missing)})")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected ({listing(self.unexpected)})")
        if self.mismatched:
            parts.append(f"{len(self.mismatched)} with another shape ({listing(self.mismatched)})")
        return parts

    def error(self, source: str) -> UserError:
        """The one line that refuses a strict load of `source`."""
        return UserError(f"cannot load {source} into the model: {'; '.join(self.problems())}")


def compare_state(expected: dict, state: dict) -> StateDiff:
    """Which keys of `expected` are missing from `state`, which are extra, which differ in shape."""
    mismatched = []
    for key, reference in expected.items():
        value = state.get(key)
        if key in state and not isinstance(value, torch.Tensor):
            mismatched.append(f"{key}: not a tensor but {type(value).__name__}")
        elif key in state and value.shape != reference.shape:
            mismatched.append(f"{key}: file {list(value.shape)}, model {list(reference.shape)}")
    return StateDiff(missing=[key for key in expected if key not in state],
                     unexpected=[key for key in state if key not in expected],
                     mismatched=mismatched)


def strip_prefixes(state: dict) -> dict:
    """The state dict with leading `module.` and `_orig_mod.` removed from every key."""
    stripped = OrderedDict()
    for key, value in state.items():
        if not isinstance(key, str):
            raise UserError(f"the weights have a key that is not a name: {key!r}")
        name = _without_prefixes(key)
        if name in stripped:
            raise UserError(f"the weights hold '{name}' twice (with and without a prefix)")
        stripped[name] = value
    return stripped


def _without_prefixes(name: str) -> str:
    while name.startswith(PREFIXES):
        prefix = next(prefix for prefix in PREFIXES if name.startswith(prefix))
        name = name[len(prefix):]
    return name


def meta_tensors(module: torch.nn.Module) -> list[str]:
    """Names of the parameters and buffers still on the meta device, where `load_model` builds the
    network (no memory, no random initialisation) and which loading must leave empty."""
    tensors = list(module.named_parameters()) + list(module.named_buffers())
    return [name for name, tensor in tensors if tensor.is_meta]
