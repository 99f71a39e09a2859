"""What main.py shows on the console: a short log on stderr, the scores table on stdout, the
resolved config only in config.yaml and the log file (and on the console under --verbose), and
errors that say what to do about a --wts that is a folder or does not exist yet."""

import os
import re
import subprocess
import sys

import pytest

import main
from checkpoints.training import save_checkpoint
from network import build_model
from tasks.infer import CONSOLE_SEQUENCES, report
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


def weights_error(arguments, capsys) -> str:
    """The last stderr line of main.main(arguments), which must end as a user error."""
    capsys.readouterr()
    assert main.main(arguments) == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize("task", ["infer", "eval"])
def test_wts_folder_names_the_checkpoint_it_holds(tmp_path, monkeypatch, capsys, data_root, task):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "saved_models/tiny").mkdir(parents=True)
    for name in ("epoch_004.pth", "best.pth", "last.pth"):
        (tmp_path / "saved_models/tiny" / name).write_bytes(b"")
    line = weights_error(["-c", str(TINY_CONFIG), "--task", task, "--wts", "saved_models/tiny/",
                          f"data.test_root={data_root}"], capsys)
    assert line == ("error: --wts saved_models/tiny is a folder; did you mean saved_models/tiny/last.pth? "
                    "(it also holds best.pth, epoch_004.pth)")


def test_missing_wts_before_any_training_says_to_train_first(tmp_path, monkeypatch, capsys, data_root):
    monkeypatch.chdir(tmp_path)
    line = weights_error(["-c", str(TINY_CONFIG), "--task", "infer", "--wts", "saved_models/tiny/last.pth",
                          f"data.test_root={data_root}"], capsys)
    assert line == (f"error: --wts: file not found: saved_models/tiny/last.pth; "
                    f"train first: python main.py -c {TINY_CONFIG} --task train")
    line = weights_error(["-c", str(TINY_CONFIG), "--task", "eval", "--wts", "saved_models/mine/last.pth",
                          f"data.test_root={data_root}", "name=mine"], capsys)
    assert line.endswith(f"train first: python main.py -c {TINY_CONFIG} --task train name=mine")
    (tmp_path / "saved_models/tiny").mkdir(parents=True)
    line = weights_error(["-c", str(TINY_CONFIG), "--task", "infer", "--wts", "saved_models/tiny",
                          f"data.test_root={data_root}"], capsys)
    assert line == (f"error: --wts saved_models/tiny is a folder, not a checkpoint file, and holds no "
                    f"checkpoint (*.pth); train first: python main.py -c {TINY_CONFIG} --task train")


def test_missing_wts_after_training_names_the_checkpoints_there(tmp_path, monkeypatch, capsys, data_root):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "saved_models/tiny").mkdir(parents=True)
    (tmp_path / "saved_models/tiny/last.pth").write_bytes(b"")
    line = weights_error(["-c", str(TINY_CONFIG), "--task", "infer", "--wts", "saved_models/tiny/lats.pth",
                          f"data.test_root={data_root}"], capsys)
    assert line == "error: --wts: file not found: saved_models/tiny/lats.pth; saved_models/tiny holds last.pth"


def test_the_console_shows_the_overall_row_of_many_sequences_and_the_log_file_every_row(capsys, caplog):
    """The demo scores 30 sequences: its console table stays short, the log file keeps each row."""
    names = [f"val_{index:04d}" for index in range(CONSOLE_SEQUENCES + 1)]
    summary = {"protocol": "davis2016", "frames": "all", "ground_truth": ["Annotations/480p"],
               "sequences": {name: {"frames": 8, "J": 0.5, "F": 0.25, "J&F": 0.375} for name in names},
               "metrics": {"J&F": 0.375, "J": 0.5, "F": 0.25}, "score": 0.375, "score_name": "J&F",
               "num_frames": 8 * len(names), "mean_J": 0.5}
    caplog.set_level("INFO")
    report(summary, len(names), None)
    table = capsys.readouterr().out.splitlines()
    assert table == [table[0], f"{len(names)} sequences (a row each in the run's log file)",
                     "overall: J&F 0.3750, J 0.5000, F 0.2500"]
    logged = next(record.getMessage() for record in caplog.records if record.getMessage().startswith("scores:"))
    assert all(f"\n{name} " in logged for name in names)
    summary["sequences"] = dict(list(summary["sequences"].items())[:CONSOLE_SEQUENCES])
    report(summary, CONSOLE_SEQUENCES, None)
    assert len(capsys.readouterr().out.splitlines()) == CONSOLE_SEQUENCES + 3  # every row: few sequences
