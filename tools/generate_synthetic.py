"""`python -m tools.generate_synthetic ROOT --num-train N ...` (also `python -m datasets.synthetic`):
the synthetic DAVIS-layout dataset that only motion can solve (datasets/synthetic.py)."""

import argparse
import logging

from datasets import synthetic
from utils.errors import UserError, report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=synthetic.__doc__.split("\n\n")[0])
    parser.add_argument("root", help="folder to write the dataset into (must not be non-empty)")
    for name in ("--num-train", "--num-val", "--num-frames", "--height", "--width"):
        parser.add_argument(name, type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-distractors", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        synthetic.ensure_synthetic_davis(args.root, num_train=args.num_train, num_val=args.num_val,
                                         num_frames=args.num_frames, height=args.height, width=args.width,
                                         seed=args.seed, num_distractors=args.num_distractors)
    except ValueError as error:
        return report(UserError(str(error)))
    except UserError as error:
        return report(error)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
