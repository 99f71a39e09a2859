"""Every `python -m <module>` of this repository that README.md and docs/ document answers --help
in a subprocess."""

import subprocess
import sys

import pytest

from support.doc_pages import documented_modules
from support.paths import REPO_ROOT


@pytest.mark.slow
@pytest.mark.parametrize("module", documented_modules())
def test_documented_module_answers_help(module):
    result = subprocess.run([sys.executable, "-m", module, "--help"], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, f"python -m {module} --help: exit {result.returncode}\n{result.stderr[-2000:]}"
    assert "usage" in result.stdout.lower()
