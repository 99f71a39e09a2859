"""`python held_synthetic_main.py ARGS...`: `python -m tools.generate_synthetic ARGS...` that stops midway,
so that a test can kill the generation while it writes the files, whatever the machine's speed.

The environment says where: after HOLD_AFTER_FRAMES frames (JPEG files) are written, it writes the
file HOLD_SIGNAL (atomically) and waits there until the process is killed.
"""

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import datasets.synthetic  # noqa: E402
from tools.generate_synthetic import main  # noqa: E402

unheld_write_jpeg = datasets.synthetic.write_jpeg
frames_left = [int(os.environ["HOLD_AFTER_FRAMES"])]
signal_file = Path(os.environ["HOLD_SIGNAL"])


def held_write_jpeg(path, image) -> None:
    unheld_write_jpeg(path, image)
    frames_left[0] -= 1
    if frames_left[0] == 0:
        signal_tmp = signal_file.with_name(signal_file.name + ".tmp")
        signal_tmp.write_text(str(path))
        os.replace(signal_tmp, signal_file)
        while True:
            time.sleep(1)


datasets.synthetic.write_jpeg = held_write_jpeg

if __name__ == "__main__":
    raise SystemExit(main())
