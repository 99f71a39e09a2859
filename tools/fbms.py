"""`python -m tools.fbms convert ROOT OUT` (also `python -m datasets.fbms`): FBMS-59 as
downloaded, converted into the original loader's PNG layout (datasets/fbms.py)."""

import argparse
import logging
from pathlib import Path

from datasets import fbms
from utils.errors import UserError, report

logger = logging.getLogger(__name__)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="FBMS-59 tools")
    commands = parser.add_subparsers(dest="command", required=True)
    convert_parser = commands.add_parser("convert", help="official download -> PNG layout (inst/)")
    convert_parser.add_argument("root", type=Path, help="FBMS root with Trainingset/ and/or Testset/")
    convert_parser.add_argument("out", type=Path, help="folder to write the converted layout into")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        written = fbms.convert(args.root, args.out)
    except UserError as error:
        return report(error)
    logger.info("wrote %d masks and the frames under %s", written, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
