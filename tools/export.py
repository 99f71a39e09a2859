"""`python -m tools.export -c CONFIG --wts FILE [--format pt2|onnx|both]` (also
`python -m tasks.export`): the inference network exported for deployment and checked against
the eager model (tasks/export.py)."""

import argparse
import logging
import sys

from tasks import export
from utils.errors import UserError, report

logger = logging.getLogger("export")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=export.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", required=True)
    parser.add_argument("--wts", "-w", required=True, help="checkpoint (ours or the original format)")
    parser.add_argument("--format", choices=("pt2", "onnx", "both"), default="both")
    parser.add_argument("--check-height", type=int, default=128, help="height of the check clip (multiple of 32)")
    parser.add_argument("--check-width", type=int, default=224, help="width of the check clip (multiple of 32)")
    parser.add_argument("--tolerance", type=float, default=1e-3, help="largest allowed |exported - eager|")
    parser.add_argument("--verbose", action="store_true",
                        help="also show the resolved config and the software versions on the console")
    parser.add_argument("overrides", nargs="*", help="config overrides as section.key=value")
    args = parser.parse_intermixed_args(argv)
    try:
        results = export.export_command(args.config, args.wts, args.overrides, args.format,
                                        (args.check_height, args.check_width), args.tolerance, args.verbose)
    except UserError as error:
        return report(error)
    for name, (path, difference) in results.items():
        logger.info("wrote %s (%s, max difference from eager %.3g)", path, name, difference)
    return 0


if __name__ == "__main__":
    sys.exit(main())
