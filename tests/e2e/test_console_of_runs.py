"""What main.py shows on the console of whole runs: a short infer log on stderr with the scores
table on stdout and the config only in the log file, the config and versions under --verbose, and no
config while training."""

import os
import re
import subprocess
import sys

import pytest

import main
from checkpoints.training import save_checkpoint
from network import build_model
from utils.config import load_config, to_dict

from support.data_trees import write_mini_davis
from support.paths import REPO_ROOT, TINY_CONFIG

OUR_PACKAGES = {"main", "tasks", "network", "checkpoints", "datasets", "loss", "inference_handlers", "utils"}
LOG_LINE = re.compile(r"\d\d:\d\d:\d\d (?P<level>[A-Z]+) (?P<logger>[\w.]+): ")
MAX_CONSOLE_LINES = 15


@pytest.fixture
def data_root(tmp_path):
    return write_mini_davis(tmp_path / "DAVIS", num_frames=8, height=32, width=64)


@pytest.fixture
def infer_args(tmp_path, data_root):
    """An infer run of the tiny model on two sequences, as the demo's infer on its 30."""
    cfg = load_config(TINY_CONFIG)
    weights = tmp_path / "tiny.pth"
    save_checkpoint(weights, model_state=build_model(cfg.model).state_dict(), epoch=0, iteration=0,
                    config=to_dict(cfg))
    return ["-c", str(TINY_CONFIG), "--task", "infer", "--wts", str(weights), f"data.test_root={data_root}"]


def console_lines(text: str) -> int:
    """Lines as a terminal shows them: a progress bar redraws its line with carriage returns."""
    return text.count("\n")


@pytest.mark.slow
def test_infer_console_is_short_with_the_table_on_stdout_and_the_config_in_the_log_file(tmp_path, infer_args):
    fresh_matplotlib = {**os.environ, "MPLCONFIGDIR": str(tmp_path / "matplotlib")}  # it logs building its font cache
    result = subprocess.run([sys.executable, str(REPO_ROOT / "main.py"), *infer_args], cwd=tmp_path,
                            env=fresh_matplotlib, capture_output=True, timeout=300)  # bytes: text would turn \r into \n
    stdout, stderr = result.stdout.decode(), result.stderr.decode()
    assert result.returncode == 0, stderr[-3000:]
    assert console_lines(stdout) + console_lines(stderr) <= MAX_CONSOLE_LINES, stderr
    table = stdout.splitlines()
    assert table[0].startswith("protocol davis2016") and table[-1].startswith("overall: J&F ")
    assert {line.split()[0] for line in table[2:-1]} == {"bear", "cows"}
    assert "resolved config" not in stderr and "versions:" not in stderr
    loggers = [match["logger"] for match in map(LOG_LINE.match, stderr.splitlines()) if match]
    assert "tasks.setup" in loggers and {name.split(".")[0] for name in loggers} <= OUR_PACKAGES, loggers
    assert "Warning" not in stderr  # no Python warning of a third-party package

    log = (tmp_path / "results/tiny/infer.log").read_text()
    config = (tmp_path / "results/tiny/config.yaml").read_text()
    assert f"resolved config:\n{config}" in log
    assert "versions: Python" in log and "\n".join(table) in log


@pytest.mark.slow
def test_verbose_shows_the_config_and_versions_on_the_console(tmp_path, monkeypatch, capsys, infer_args):
    monkeypatch.chdir(tmp_path)
    assert main.main([*infer_args, "--verbose"]) == 0
    console = capsys.readouterr()
    config = (tmp_path / "results/tiny/config.yaml").read_text()
    assert f"resolved config:\n{config}" in console.err and "versions: Python" in console.err
    assert console.out.startswith("protocol davis2016")


@pytest.mark.slow
def test_training_console_shows_no_config(tmp_path, monkeypatch, capsys, data_root):
    monkeypatch.chdir(tmp_path)
    assert main.main(["-c", str(TINY_CONFIG), "--task", "train", f"data.train_root={data_root}",
                      f"data.test_root={data_root}", "train.validate_every=0"]) == 0
    console = capsys.readouterr()
    assert "task train, config 'tiny'" in console.err and "finished training" in console.err
    assert "resolved config" not in console.err and "lr_milestones" not in console.err
    assert console.out == ""
    assert "resolved config:\nname: tiny\n" in (tmp_path / "saved_models/tiny/train.log").read_text()
