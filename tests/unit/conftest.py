"""tests/unit is the quick loop: every test runs in this process. A test here that starts main.py or
torchrun in a subprocess fails at once; such tests belong in tests/e2e/."""

import subprocess

import pytest

PROCESS_LEVEL = ("main.py", "torchrun", "torch.distributed.run")


@pytest.fixture(autouse=True)
def no_main_py_or_torchrun_subprocess(monkeypatch):
    unguarded_init = subprocess.Popen.__init__

    def guarded_init(self, args, *rest, **kwargs):
        words = [args] if isinstance(args, (str, bytes)) else list(args)
        if any(marker in str(word) for word in words for marker in PROCESS_LEVEL):
            pytest.fail(f"a unit test started {' '.join(map(str, words))}: move it to tests/e2e/")
        unguarded_init(self, args, *rest, **kwargs)

    monkeypatch.setattr(subprocess.Popen, "__init__", guarded_init)
