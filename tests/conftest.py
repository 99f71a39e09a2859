"""Shared fixtures (miniature datasets written into tmp_path, weights of the tiny model) and the
rule that a test skipped for a missing package fails. What tests import lives in tests/support/."""

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # the project's packages (main, network, datasets, ...)
sys.path.insert(0, str(REPO_ROOT / "tests"))  # the tests' own package: support

from support.data_trees import write_mini_davis  # noqa: E402

pytest_plugins = ["support.shared_fixtures"]  # tiny_weights, inferred and the corpus tests' fixtures


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


@pytest.fixture(scope="module")
def model_state():
    """Random tensors in the shape of the tiny weight-test model (tests/support/weight_files.py)."""
    from support.weight_files import random_like, tiny_model
    return random_like(tiny_model().state_dict(), seed=0)


@pytest.fixture
def mini_davis(tmp_path) -> Path:
    return write_mini_davis(tmp_path / "DAVIS")


@pytest.fixture(params=[0o022, 0o077], ids=["umask022", "umask077"])
def umask(request):
    """The process's umask set to each of the usual 022 and the strict 077 in turn."""
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)
