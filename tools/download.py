"""`python -m tools.download bmvc_final|csn_backbone` (also `python -m tasks.download`): the
original's published weights, downloaded and checked that they load (tasks/download.py)."""

import argparse
import logging
import sys

from tasks import download
from tasks.setup import setup_logging
from utils.errors import UserError, report
from utils.files import os_error_text

logger = logging.getLogger("download")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=download.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", choices=sorted(download.RELEASES), help="bmvc_final: the trained network (--wts); "
                        "csn_backbone: the ir-CSN-152 backbone (model.backbone_weights)")
    parser.add_argument("--dest", default="saved_models", help="folder the weights go to (default: saved_models)")
    parser.add_argument("--url", help="download from this address instead of the authors' server")
    parser.add_argument("--config", default=download.DEFAULT_CONFIG,
                        help=f"run config whose model the file must load into (default: {download.DEFAULT_CONFIG})")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        path, downloaded = download.download(args.file, args.dest, args.url, args.config)
    except UserError as error:
        return report(error)
    except OSError as error:
        return report(UserError(f"{error.filename}: {os_error_text(error)}" if error.filename else str(error)))
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    if downloaded:
        logger.info("%s: downloaded; it loads into the model of %s", path, args.config)
    else:
        logger.info("%s: already present and loads into the model of %s; not downloaded again", path, args.config)
    print(download.usage_command(download.RELEASES[args.file], path, args.config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
