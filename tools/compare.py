"""`python -m tools.compare --runs A B [--out DIR]` (also `python -m inference_handlers.compare` and
`python -m inference_handlers.report`): one HTML page comparing two runs
(inference_handlers/evaluation/compare.py)."""

import argparse
import logging
import sys

from inference_handlers.evaluation.compare import compare_runs
from utils.errors import UserError, report

logger = logging.getLogger(__name__)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Compare two runs: per-sequence changes of the headline "
                                                 "measure and the most changed frames, as one HTML page.")
    parser.add_argument("--runs", nargs=2, required=True, metavar="DIR",
                        help="two results folders (results/<name>) with report data (per_frame.json, metrics.json)")
    parser.add_argument("--out", help="folder of comparison.html (default: results/compare_<a>_vs_<b>)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        logger.info("comparison written to %s", compare_runs(*args.runs, args.out))
    except UserError as error:
        return report(error)
    return 0


if __name__ == "__main__":
    sys.exit(main())
