"""`python held_write_main.py ARGS...`: main.py with one atomic write held open, so that a test can
kill the run while that write is under way, whatever the machine's speed.

The environment says which write: HOLD_WRITE_OF, a regex of final file names; HOLD_WRITE_AFTER,
how many writes of such files to let through first. The held write has all its data in its temp
file; instead of renaming it onto the final name, it writes the temp file's path into the file
HOLD_WRITE_SIGNAL (atomically) and waits there until the process is killed.
"""

import contextlib
import os
import re
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import utils.files  # noqa: E402  (patched before any module imports atomic_path from it)

unheld_atomic_path = utils.files.atomic_path
pattern = re.compile(os.environ["HOLD_WRITE_OF"])
signal_file = Path(os.environ["HOLD_WRITE_SIGNAL"])
writes_left = [int(os.environ.get("HOLD_WRITE_AFTER", "0"))]
count_lock = threading.Lock()


def hold_this_write(path: Path, tmp_name: str) -> bool:
    """Whether this write, with data in `tmp_name`, is the one to hold."""
    if not pattern.fullmatch(path.name) or not Path(tmp_name).stat().st_size:
        return False
    with count_lock:
        writes_left[0] -= 1
        return writes_left[0] == -1


@contextlib.contextmanager
def held_atomic_path(path):
    with unheld_atomic_path(path) as tmp_name:
        yield tmp_name
        if hold_this_write(Path(path), tmp_name):
            signal_tmp = signal_file.with_name(signal_file.name + ".tmp")
            signal_tmp.write_text(tmp_name)
            os.replace(signal_tmp, signal_file)
            while True:
                time.sleep(1)


utils.files.atomic_path = held_atomic_path

import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main.main(sys.argv[1:]))
