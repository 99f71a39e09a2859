"""Every `python -m <module>` of this repository that README.md and docs/ document answers --help
in a subprocess, and every command of tools/ answers it as its former names do."""

import subprocess
import sys

import pytest

from support.doc_pages import COMMAND_NAMES, documented_modules
from support.paths import REPO_ROOT


def help_text(module: str) -> str:
    result = subprocess.run([sys.executable, "-m", module, "--help"], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, f"python -m {module} --help: exit {result.returncode}\n{result.stderr[-2000:]}"
    assert result.stdout.startswith("usage: ")
    return result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("module", documented_modules())
def test_documented_module_answers_help(module):
    help_text(module)


@pytest.mark.slow
@pytest.mark.parametrize("command, former_name", [(command, name) for command, names in COMMAND_NAMES.items()
                                                  for name in names])
def test_a_command_and_its_former_name_answer_help_alike(command, former_name):
    assert help_text(former_name) == help_text(command)
