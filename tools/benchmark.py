"""`python -m tools.benchmark -c CONFIG ...` (also `python -m tasks.benchmark`): speed, memory and
FLOPs of the network, end-to-end inference speed, every inference setting, the model variants'
costs or a corpus run (tasks/benchmark.py, whose parse_args the GPU report shares)."""

import sys

from tasks import benchmark
from utils.errors import UserError, report


def main(argv=None) -> int:
    args = benchmark.parse_args(argv)
    try:
        benchmark.run_benchmark(args)
    except UserError as error:
        return report(error)
    return 0


if __name__ == "__main__":
    sys.exit(main())
