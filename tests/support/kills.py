"""Kill `main.py` at a chosen moment: after a log line and a delay, or inside a held write."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from support.paths import REPO_ROOT


HELD_WRITE_TIMEOUT = 600    # seconds a run may take to reach the write it holds
TEMP_FILE = re.compile(r"\.(?P<final>.+)\.\w{8}\.tmp")  # atomic_write's temp name for .../<final>


def temp_files(folder: Path) -> set[Path]:
    return {path for path in folder.rglob(".*.tmp") if TEMP_FILE.fullmatch(path.name)}


def run_until_killed(args: list[str], cwd: Path, log: Path, started: str, delay: float,
                     held: tuple[str, int] | None = None, backstop: tuple[str, int] | None = None) -> dict:
    """Start `python main.py args` in `cwd` and SIGKILL it `delay` seconds after it logs `started`,
    or, with `held` = (final_names, after), while it holds open the write of a file whose name
    matches the regex `final_names` (the write after `after` others of such files; see
    held_write_main.py), so that the kill lands inside a write on any machine. A `backstop` of the
    same form is a held write that only bounds the delay: the kill comes `delay` seconds after
    `started` or while that write is held, whichever is first, so that a fast machine cannot finish
    the run before the kill. Returns {"killed": False when it had finished, "new_temp_files": the
    temp files the kill left behind, "delay", "held": whether a write was held, "last": its last
    log line}."""
    before = temp_files(cwd)
    signal_file = log.with_suffix(".held")
    program, env = REPO_ROOT / "main.py", {**os.environ, "OMP_NUM_THREADS": "1"}
    hold = held or backstop
    if hold is not None:
        program = REPO_ROOT / "tests/support/held_write_main.py"
        env.update(HOLD_WRITE_OF=hold[0], HOLD_WRITE_AFTER=str(hold[1]), HOLD_WRITE_SIGNAL=str(signal_file))
    with open(log, "w") as stderr:
        process = subprocess.Popen([sys.executable, str(program), *args], cwd=cwd, env=env,
                                   stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        while process.poll() is None and started not in log.read_text() and not signal_file.exists():
            time.sleep(0.01)
        deadline = time.monotonic() + (HELD_WRITE_TIMEOUT if held is not None else delay)
        while process.poll() is None and time.monotonic() < deadline and not signal_file.exists():
            time.sleep(0.005)
        assert held is None or signal_file.exists(), f"no write of {held[0]} was held:\n{log.read_text()[-3000:]}"
        process.kill()
    finally:
        process.kill()
        process.wait(timeout=60)
    killed = process.returncode == -signal.SIGKILL
    if not killed:
        assert process.returncode == 0, log.read_text()[-3000:]
    return {"killed": killed, "new_temp_files": sorted(temp_files(cwd) - before), "delay": round(delay, 2),
            "held": signal_file.exists(), "last": log.read_text().strip().splitlines()[-1][-90:]}
