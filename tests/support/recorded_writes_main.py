"""`python recorded_writes_main.py ARGS...`: main.py that records the final path of every atomic
write it completes (utils.files.atomic_path), one absolute path a line, in the file
$RECORD_WRITES_TO/<process id>.txt; under torchrun each worker keeps its own file, so a test can
tell which process wrote what, and how often."""

import contextlib
import os
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import utils.files  # noqa: E402  (patched before any module imports atomic_path from it)

unrecorded_atomic_path = utils.files.atomic_path
record_lock = threading.Lock()


@contextlib.contextmanager
def recorded_atomic_path(path):
    with unrecorded_atomic_path(path) as tmp_name:
        yield tmp_name
    with record_lock, open(Path(os.environ["RECORD_WRITES_TO"]) / f"{os.getpid()}.txt", "a") as record:
        record.write(f"{Path(path).resolve()}\n")


utils.files.atomic_path = recorded_atomic_path

import main  # noqa: E402

if __name__ == "__main__":
    status = main.main(sys.argv[1:])
    if "tasks.distributed" in sys.modules:  # as main.py: a torchrun worker ends without teardown
        from tasks.distributed import exit_worker, launched_by_torchrun
        if launched_by_torchrun():
            exit_worker(status)
    sys.exit(status)
