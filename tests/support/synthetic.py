"""The small synthetic dataset the synthetic-data tests generate, and a folder's files by path."""

from pathlib import Path


SMALL = dict(num_train=4, num_val=2, num_frames=6, height=64, width=96, seed=0)  # generate_synthetic_davis's arguments


def all_files(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*"))
            if path.is_file()}
