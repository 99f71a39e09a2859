"""Shared fixtures: miniature datasets written into tmp_path, and the tiny test config."""

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from datasets.io import write_jpeg, write_palette_png  # noqa: E402

TINY_CONFIG = REPO_ROOT / "tests" / "configs" / "tiny.yaml"


def fail_if_a_package_is_missing(report) -> None:
    """A test or module skipped by pytest.importorskip ("could not import ...") fails instead:
    every package the tests use is in requirements-test.txt (which includes requirements.txt), so
    a missing one is a broken install, not a reason to test less. Other skips (no CUDA device,
    running as root) stay skips."""
    if report.skipped and "could not import" in str(report.longrepr):
        report.outcome = "failed"
        report.longrepr = f"a package the tests need is missing (pip install -r requirements-test.txt): {report.longrepr}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    fail_if_a_package_is_missing(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    report = yield
    fail_if_a_package_is_missing(report)
    return report


def write_mini_davis(root: Path, names=("bear", "cows"), num_frames=10, height=64, width=112) -> Path:
    """A DAVIS tree: noise frames with a moving ellipse, palette masks, ImageSets 2016 and 2017."""
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[:height, :width]
    for name in names:
        for index in range(num_frames):
            center_x = 20 + 4 * index
            ellipse = ((cols - center_x) / 12.0) ** 2 + ((rows - height / 2) / 9.0) ** 2 <= 1
            image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            image[ellipse] = (220, 40, 40)
            write_jpeg(root / "JPEGImages/480p" / name / f"{index:05d}.jpg", image)
            write_palette_png(root / "Annotations_unsupervised/480p" / name / f"{index:05d}.png",
                              ellipse.astype(np.uint8))
    for split in ("2016/val.txt", "2017/train.txt", "2017/val.txt"):
        (root / "ImageSets" / split).parent.mkdir(parents=True, exist_ok=True)
        (root / "ImageSets" / split).write_text("\n".join(names) + "\n")
    return root


def masks_in(folder: Path) -> dict:
    """{file stem: mask array} of the PNG masks in a folder, read with PIL."""
    masks = {}
    for path in sorted(folder.glob("*.png")):
        with Image.open(path) as image:
            masks[path.stem] = np.asarray(image)
    return masks


def mean_j(results: Path, ground_truth: dict) -> float:
    """Mean J of the masks written to results/<sequence>/<name>.png, by hand: per frame
    |M n G| / |M u G| (1 if both are empty) against ground_truth {sequence: {name: mask}},
    averaged over a sequence's frames, then over the sequences."""
    means = []
    for sequence, frames in ground_truth.items():
        values = []
        for name, truth in frames.items():
            with Image.open(results / sequence / f"{name}.png") as image:
                mask, truth = np.asarray(image) != 0, np.asarray(truth) != 0
            union = np.count_nonzero(mask | truth)
            values.append(np.count_nonzero(mask & truth) / union if union else 1.0)
        means.append(np.mean(values))
    return float(np.mean(means))


@pytest.fixture(scope="module")
def model_state():
    """Random tensors in the shape of the tiny weight-test model (tests/weight_files.py)."""
    from weight_files import random_like, tiny_model
    return random_like(tiny_model().state_dict(), seed=0)


@pytest.fixture
def mini_davis(tmp_path) -> Path:
    return write_mini_davis(tmp_path / "DAVIS")
