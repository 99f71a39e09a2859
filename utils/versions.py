"""What produced a result: the versions of Python, torch, torchvision, CUDA and the code's commit,
logged at a run's set-up and kept in the reports."""

import importlib.metadata
import importlib.util
import platform
import re
import subprocess
from pathlib import Path

import torch

CODE_ROOT = Path(__file__).resolve().parents[1]


def code_version() -> str:
    """The git commit of the code, with '(uncommitted changes)' when tracked files differ from it;
    'no git commit' outside a repository or without git."""
    def git(*args) -> str:
        return subprocess.run(["git", "-C", str(CODE_ROOT), *args], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
    try:
        commit = git("rev-parse", "HEAD")
        changed = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "no git commit"
    return f"git commit {commit}" + (" (uncommitted changes)" if changed else "")


def torchvision_version() -> str:
    """torchvision's `__version__` (with its build tag, e.g. +cu130) read from its version.py:
    importing torchvision costs seconds (its model zoo and torch._dynamo) that a run that does not
    use them should not pay."""
    spec = importlib.util.find_spec("torchvision")
    version_file = Path(spec.origin).with_name("version.py") if spec and spec.origin else None
    match = re.search(r"^__version__ = '([^']+)'", version_file.read_text(), re.MULTILINE) if (
        version_file and version_file.is_file()) else None
    return match[1] if match else importlib.metadata.version("torchvision")


def environment_versions() -> str:
    """Python, torch, torchvision, CUDA / cuDNN (when a GPU is usable) and the code's commit."""
    parts = [f"Python {platform.python_version()}", f"torch {torch.__version__}",
             f"torchvision {torchvision_version()}"]
    if torch.cuda.is_available():
        parts.append(f"CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, "
                     f"{torch.cuda.get_device_name()}")
    return ", ".join(parts) + f"; code: {code_version()}"
