"""The repository's root and the tiny test config (a tiny model that runs in seconds on a CPU)."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TINY_CONFIG = REPO_ROOT / "tests" / "support" / "tiny.yaml"
