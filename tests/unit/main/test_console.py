"""What main.py shows on the console: errors that say what to do about a --wts that is a folder or
does not exist yet, and the overall row of many sequences (whole runs on the console:
tests/e2e/test_console_of_runs.py)."""

import pytest

import main
from tasks.infer import CONSOLE_SEQUENCES, report

from support.data_trees import write_mini_davis
from support.paths import TINY_CONFIG


@pytest.fixture
def data_root(tmp_path):
    return write_mini_davis(tmp_path / "DAVIS", num_frames=8, height=32, width=64)


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
