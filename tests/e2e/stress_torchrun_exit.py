"""Stress check, not part of the suite: a finished two-process torchrun training exits 0, every time.

    python tests/e2e/stress_torchrun_exit.py --runs 20

Runs `torchrun --standalone --nproc_per_node=2 main.py -c tests/support/tiny.yaml --task train`
(2 epochs on a small synthetic root with a DataLoader worker, validated and checkpointed every
epoch, as tests/e2e/test_distributed.py does) `--runs` times in a fresh folder each, with
PYTHONFAULTHANDLER=1 so that a worker that dies of a signal at exit leaves the Python stacks of its
threads in the log. Prints one line per run (exit code, seconds, any abort seen) and a summary; the
exit status is 0 only when every run exited 0 after logging "finished training".
"""

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TINY_CONFIG = REPO_ROOT / "tests/support/tiny.yaml"
TRAIN_ARGS = [
    "--task", "train", "data.train=synthetic", "data.test=synthetic", "data.train_root=data/synthetic",
    "data.test_root=data/synthetic", "data.synthetic.num_train=6", "data.synthetic.num_val=2",
    "data.synthetic.num_frames=8", "data.synthetic.height=32", "data.synthetic.width=64", "data.clips_per_sequence=2",
    "train.epochs=2", "train.validate_every=1", "train.log_every=1", "train.checkpoint_every=1",
    "loader.num_workers=1"]
ABORT_SIGNS = ("terminate called", "Fatal Python error", "SIGABRT", "Aborted")

logger = logging.getLogger("stress_torchrun_exit")


def one_run(folder: Path) -> tuple[int, float, str]:
    """(torchrun's exit code, seconds, the first abort line or '') of one training in `folder`."""
    folder.mkdir(parents=True)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               str(REPO_ROOT / "main.py"), "-c", str(TINY_CONFIG), *TRAIN_ARGS]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONFAULTHANDLER="1")
    start = time.monotonic()
    with open(folder / "torchrun.log", "w") as log:
        code = subprocess.run(command, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
    seconds = time.monotonic() - start
    output = (folder / "torchrun.log").read_text(errors="replace")
    if "finished training" not in output and code == 0:
        code = -1
    abort = next((line for line in output.splitlines() if any(sign in line for sign in ABORT_SIGNS)), "")
    return code, seconds, abort


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--keep", help="keep the run folders (and their logs) under this folder")
    args = parser.parse_args()
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="stress-torchrun-"))
    codes = []
    for index in range(args.runs):
        code, seconds, abort = one_run(root / f"run_{index:03d}")
        codes.append(code)
        logger.info("run %d/%d: exit %d in %.1f s%s", index + 1, args.runs, code, seconds,
                    f" ({abort.strip()})" if abort else "")
    failed = sum(code != 0 for code in codes)
    logger.info("%d of %d runs exited 0; logs under %s", len(codes) - failed, len(codes), root)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
