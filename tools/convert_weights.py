"""`python -m tools.convert_weights IN OUT [--to ours|original]` (also `python -m checkpoints.convert`
and `python -m network.convert_weights`): weight files converted between formats
(checkpoints/convert.py)."""

import argparse
import logging
import sys

from checkpoints import convert
from utils.errors import UserError

logger = logging.getLogger("convert_weights")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=convert.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", metavar="IN", help="checkpoint or backbone weight file")
    parser.add_argument("output", metavar="OUT", help="file to write")
    parser.add_argument("--to", choices=("ours", "original"), default="ours",
                        help="format of a converted full-model checkpoint (default: ours)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        logger.info("converted %s", convert.convert(args.input, args.output, args.to))
    except (UserError, OSError) as error:  # OSError: OUT cannot be written
        logger.error("error: %s", error)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
