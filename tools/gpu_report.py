"""`python -m tools.gpu_report [--out FILE] [--smoke]` (also `python -m tasks.gpu_report`): one
prepared run that measures everything the GPU should be measured on (tasks/gpu_report.py)."""

import argparse
import logging
import sys
from pathlib import Path

from tasks import gpu_report

logger = logging.getLogger("gpu_report")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=gpu_report.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="results/gpu_report.json", help="the JSON report (rewritten after each row)")
    parser.add_argument("--smoke", action="store_true", help="the same code on the CPU, tiny model, small sizes")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    rows = gpu_report.measure_everything(Path(args.out), args.smoke)
    sys.stdout.write(gpu_report.markdown_table(rows) + "\n")
    logger.info("report written to %s", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
