"""Atomic file writes: readers never see a half-written checkpoint, mask or result file.

A write that the operating system refuses (no space left, no permission, a file where a folder
should be) raises `UserError` naming the file, so the run ends with one `error:` line; the
temporary file is removed and the file under the final name, if any, is left as it was. A written
file has the mode of any new file of the process: 0o666 less the umask (create_temp_file).
"""

import contextlib
import csv
import errno
import fcntl
import glob
import io
import json
import logging
import os
import secrets
import socket
import tempfile
import time
from pathlib import Path

from utils.errors import UserError

logger = logging.getLogger(__name__)
TEMP_NAME_ATTEMPTS = 100  # as tempfile.mkstemp: 4 billion names make a collision all but impossible


def os_error_text(error: OSError) -> str:
    """The reason of an OSError without its path, e.g. 'No space left on device'."""
    return error.strerror or str(error)


def create_temp_file(path: Path) -> str:
    """Create an empty temp file `.<name>.<8 random hex digits>.tmp` beside `path` and return its
    name. Its mode is what any new file of this process gets (0o666 less the umask, or a folder's
    default ACL), so the renamed result has it too: the kernel applies the umask when it creates
    the file, so nothing reads or changes the process-wide umask (os.umask is a set-and-restore
    that races with other threads). tempfile.mkstemp would create it 0o600 whatever the umask."""
    for _ in range(TEMP_NAME_ATTEMPTS):
        tmp_name = str(path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(tmp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666))
        except FileExistsError:
            continue
        return tmp_name
    raise FileExistsError(errno.EEXIST, f"no free temp file name after {TEMP_NAME_ATTEMPTS} attempts",
                          str(path.parent))


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """A temporary file's name beside `path`, for the block to write; renamed onto `path` when the
    block ends without an exception, deleted otherwise, so that readers never see a half-written
    file."""
    path = Path(path)
    tmp_name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp_name = create_temp_file(path)
        yield tmp_name
        os.replace(tmp_name, path)
    except OSError as error:
        raise UserError(f"cannot write {path}: {os_error_text(error)}") from error
    finally:
        if tmp_name is not None and os.path.exists(tmp_name):
            os.unlink(tmp_name)


def atomic_write(path: str | Path, write_fn) -> None:
    """Call `write_fn(tmp_path)` and rename the result onto `path` (atomic_path)."""
    with atomic_path(path) as tmp_name:
        write_fn(tmp_name)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `text` to `path` atomically."""
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def write_json(path: str | Path, summary) -> None:
    """`summary` as indented JSON, written atomically."""
    atomic_write_text(path, json.dumps(summary, indent=2) + "\n")


def write_csv(path: str | Path, rows: list[list]) -> None:
    """Rows (the first one the header) as CSV, written atomically; floats with 6 decimals."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for row in rows:
        writer.writerow([f"{value:.6f}" if isinstance(value, float) else value for value in row])
    atomic_write_text(path, buffer.getvalue())


def ensure_writable_folder(folder: str | Path, purpose: str) -> Path:
    """Create `folder` if needed and check that a file can be written into it (permissions are
    not enough to tell: root ignores them, a read-only mount does not); a UserError names the
    folder and `purpose` (e.g. 'results')."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check.", suffix=".tmp"):
            pass
    except OSError as error:
        raise UserError(f"cannot write the {purpose} folder {folder}: {os_error_text(error)}") from error
    return folder


def remove_temp_files(folder: str | Path, final_name: str = "*") -> list[Path]:
    """Delete the temp files that `atomic_write`s into `folder` (not its subfolders) left when their
    process was killed: all of them, or only those of the file named `final_name`; only safe while
    no other process writes them (e.g. under `lock_folder`)."""
    pattern = "*" if final_name == "*" else glob.escape(final_name)
    removed = sorted(Path(folder).glob(f".{pattern}.*.tmp"))
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def holder_text() -> str:
    """Who holds a lock: 'process <pid> on <host> since <time>'."""
    return f"process {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}"


def lock_file(path: str | Path, wait: bool):
    """Take the exclusive lock of the file `path` (created if needed) and return its open handle; the
    lock lasts until the handle is closed or the process ends, however it ends. None when `wait` is
    false and another process holds it.

    A POSIX record lock (fcntl.lockf), not flock: it belongs to this process alone. A forked child
    (a DataLoader worker) inherits the open file but not the lock, so a killed run's folder is free
    the moment the run itself is gone, even while its workers are still exiting (an flock lives on
    the open file, which forked children share). Consequences: a second open of the same file in
    this process must not be closed while the lock is held (closing any handle of the file drops
    the process's locks), and two threads of one process do not exclude each other.
    """
    handle = open(path, "a+")
    try:
        fcntl.lockf(handle, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        handle.close()
        if error.errno in (errno.EACCES, errno.EAGAIN):
            return None
        raise
    return handle


def lock_folder(folder: str | Path, purpose: str):
    """Hold an exclusive lock on `folder` (a `.lock` file inside it) for as long as the returned
    file stays open (see `lock_file`); the file names the holder while it is held and is emptied
    by `unlock_folder`. A folder locked by a running process raises UserError naming the folder
    and that process; a lock file still naming a process that ended without releasing it (killed)
    is stale: it is taken over, with one log line."""
    lock_path = ensure_writable_folder(folder, purpose) / ".lock"
    handle = lock_file(lock_path, wait=False)
    if handle is None:
        holder = lock_path.read_text().strip() or "another process"
        raise UserError(f"{folder} is in use by {holder}; wait for it to end, or choose another "
                        f"run name (name=...)")
    handle.seek(0)
    stale = handle.read().strip()
    if stale:
        logger.warning("%s: taking over the stale lock of %s, which ended without releasing it", folder, stale)
    handle.seek(0)
    handle.truncate()
    handle.write(holder_text() + "\n")
    handle.flush()
    return handle


def unlock_folder(handle) -> None:
    """Release a lock of `lock_folder`, emptying its file first (an empty lock file is a clean one)."""
    handle.seek(0)
    handle.truncate()
    handle.close()
