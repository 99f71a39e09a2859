"""`python -m tools.evaluate` (also `python -m inference_handlers.evaluate`): score a folder of
masks against ground truth (inference_handlers/evaluation/evaluate.py)."""

import argparse
import logging
import sys
from pathlib import Path

from inference_handlers.evaluation import evaluate
from inference_handlers.evaluation.protocols import FRAME_SETS, PROTOCOLS, format_table
from utils.errors import UserError, report


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=evaluate.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pred", required=True, help="folder of prediction folders, one per sequence")
    parser.add_argument("--gt", required=True, help="mask tree, flat mask folder, or dataset root (--dataset)")
    parser.add_argument("--protocol", choices=sorted(PROTOCOLS), help="default: from --dataset, else davis2016")
    parser.add_argument("--frames", choices=FRAME_SETS, default="all",
                        help="score all annotated frames or skip each sequence's first and last one")
    parser.add_argument("--dataset", help="read --gt as this dataset's root (davis, fbms, visal, ...)")
    parser.add_argument("--split", help="with --dataset: its split (DAVIS list under ImageSets, FBMS Testset; "
                                        "default 2016/val.txt); without: a file of the sequences to score, one name "
                                        "per line or DAVIS-2016 '<frame path> <mask path>' lines (default: every "
                                        "ground-truth sequence that has a folder in --pred)")
    parser.add_argument("--out", help="also write metrics.json and metrics.csv into this folder")
    parser.add_argument("--report", action="store_true",
                        help="also write report.html and per_frame.json (with the metrics) into --out, else into --pred")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        scores = evaluate.score_folder(Path(args.pred), Path(args.gt), args.protocol, args.frames, args.dataset,
                                       args.split)
        sys.stdout.write(format_table(scores.summary) + "\n")  # the answer
        evaluate.write_folder_results(scores, args.out or (args.pred if args.report else None), args.report)
    except UserError as error:
        return report(error)
    return 0


if __name__ == "__main__":
    sys.exit(main())
