"""Atomic file writes: readers never see a half-written checkpoint, mask or result file."""

import os
import tempfile
from pathlib import Path


def atomic_write(path: str | Path, write_fn) -> None:
    """Call `write_fn(tmp_path)` and rename the result onto `path`, so that readers never see a
    half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        write_fn(tmp_name)
        os.replace(tmp_name, path)
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `text` to `path` atomically."""
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))
