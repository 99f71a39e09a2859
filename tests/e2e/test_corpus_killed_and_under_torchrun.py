"""`--input` naming many videos, as whole processes: a run killed inside a marker write reruns to
the same outputs, skipping the complete videos; torchrun ranks (one machine, or two launchers as two
nodes) write each video once and end with status 3 after rank 0 has written everything; the
benchmark of one corpus run against one run per video."""

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from support.corpus import SEQUENCES, infer_args, masks, noise_frames, run_in
from support.kills import run_until_killed, temp_files
from support.paths import REPO_ROOT, TINY_CONFIG
from support.videos import write_video


@pytest.fixture(autouse=True, scope="module")
def one_thread_in_this_module(one_thread):
    """The corpus runs of this module with one intra-op thread (support/shared_fixtures.py)."""


@pytest.mark.slow
def test_killed_inside_a_marker_write_then_rerun_skips_the_complete_videos_and_ends_the_same(
        tmp_path, folder_run, tiny_weights, corpus, monkeypatch, capsys):
    """Killed while it holds open the second video's .complete.json write (tests/support/held_write_main.py):
    the first video is complete, the second's masks are written but it is not; the rerun skips
    one, predicts the others, and ends with the uninterrupted run's masks, markers and failures.json."""
    arguments = infer_args(tiny_weights, str(corpus))
    outcome = run_until_killed(arguments, tmp_path, tmp_path.parent / f"{tmp_path.name}.log", "videos to segment",
                               0.0, held=(r"\.complete\.json", 1))
    run_folder = tmp_path / "results/tiny/clips"
    assert outcome["killed"] and [(p.parent.name, p.name[:16]) for p in outcome["new_temp_files"]] == [
        ("b", "..complete.json.")]  # killed holding b's marker, its data in the temp file
    assert (run_folder / "a/.complete.json").is_file() and not (run_folder / "b/.complete.json").exists()
    assert run_in(tmp_path, arguments, monkeypatch) == 0
    summary = f"{len(SEQUENCES)} videos: {len(SEQUENCES) - 1} done, 1 skipped (complete), 0 failed"
    assert summary in capsys.readouterr().out
    assert not temp_files(run_folder)
    assert masks(run_folder) == masks(folder_run)
    for name in [*SEQUENCES, "failures.json"]:
        marker = f"{name}/.complete.json" if name in SEQUENCES else name
        assert (run_folder / marker).read_text() == (folder_run / marker).read_text(), name


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch(cwd: Path, launcher: list[str], arguments: list[str], records: Path, log: Path) -> subprocess.Popen:
    """torchrun LAUNCHER tests/support/recorded_writes_main.py ARGUMENTS in `cwd` (every write recorded)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", RECORD_WRITES_TO=str(records))
    command = [sys.executable, "-m", "torch.distributed.run", *launcher,
               str(REPO_ROOT / "tests/support/recorded_writes_main.py"), *arguments]
    with open(log, "w") as output:
        return subprocess.Popen(command, cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT)


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["one_machine", "two_nodes"])
def test_torchrun_ranks_write_each_video_once_and_the_masks_of_one_process(tmp_path, folder_run, tiny_weights,
                                                                          corpus, layout):
    records = tmp_path / "records"
    records.mkdir()
    arguments = infer_args(tiny_weights, str(corpus))
    if layout == "one_machine":
        launchers = [launch(tmp_path, ["--standalone", "--nproc_per_node=2"], arguments, records, tmp_path / "run.out")]
    else:  # two launchers of one process each, meeting at a c10d rendezvous; one shared results folder
        endpoint = f"127.0.0.1:{free_port()}"
        launchers = [launch(tmp_path, ["--nnodes=2", f"--node-rank={node}", "--nproc-per-node=1", "--rdzv-backend=c10d",
                                       f"--rdzv-endpoint={endpoint}", "--rdzv-id=corpus"], arguments, records,
                            tmp_path / f"node{node}.out") for node in (0, 1)]
    for launcher in launchers:
        assert launcher.wait(timeout=600) == 0, "\n".join(p.read_text()[-3000:] for p in tmp_path.glob("*.out"))
    run_folder = tmp_path / "results/tiny/clips"
    assert masks(run_folder) == masks(folder_run)
    writes = {path.stem: path.read_text().splitlines() for path in records.glob("*.txt")}
    every = [Path(line) for lines in writes.values() for line in lines]
    outputs = [path for path in every if path.parent.parent == run_folder.resolve()]  # masks and markers
    assert len(outputs) == len(set(outputs)) == sum(SEQUENCES.values()) + len(SEQUENCES)  # each written once
    writers = {path.parent.name: pid for pid, lines in writes.items() for path in map(Path, lines)
               if path.parent.parent == run_folder.resolve()}
    assert len(set(writers.values())) == 2  # both ranks wrote videos
    log = (run_folder / "infer.log").read_text()
    plan = re.search(r"rank 0: (\d+) videos, (\d+) frames to predict; rank 1: (\d+) videos, (\d+) frames", log).groups()
    assert int(plan[0]) + int(plan[2]) == len(SEQUENCES) and abs(int(plan[1]) - int(plan[3])) <= max(SEQUENCES.values())
    assert json.loads((run_folder / "failures.json").read_text())["failures"] == []


@pytest.mark.slow
def test_torchrun_ranks_end_with_status_3_after_rank_0_has_written_everything(tmp_path, tiny_weights):
    """A failed video: every rank ends with 3, but none before rank 0 has written failures.json and
    the report (torchrun stops the other workers as soon as one ends with a nonzero status)."""
    (tmp_path / "clips").mkdir()
    write_video(tmp_path / "clips/a.mp4", noise_frames(3, 0))
    (tmp_path / "clips/zero.mp4").write_bytes(b"")
    (tmp_path / "records").mkdir()
    launcher = launch(tmp_path, ["--standalone", "--nproc_per_node=2"], infer_args(tiny_weights, "clips"),
                      tmp_path / "records", tmp_path / "run.out")
    assert launcher.wait(timeout=600) == 1  # torchrun's status when a worker's is not 0
    output = (tmp_path / "run.out").read_text()
    assert "failed (exitcode: 3)" in output and "2 videos: 1 done, 0 skipped (complete), 1 failed" in output
    assert "1 of 2 videos failed; paths and reasons in results/tiny/clips/failures.json" in output
    run_folder = tmp_path / "results/tiny/clips"
    assert json.loads((run_folder / "failures.json").read_text())["failed"] == 1
    assert "zero.mp4" in (run_folder / "report.html").read_text()


@pytest.mark.slow
def test_benchmark_times_one_corpus_run_against_one_run_per_video(tmp_path, monkeypatch, capsys):
    from tools import benchmark
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert benchmark.main(["-c", str(TINY_CONFIG), "--corpus", "2", "--frames", "3", "--height", "32", "--width", "48",
                           "inference.report=false"]) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (row["videos"], row["frames_per_video"], len(row["separate_run_wall_s_each"])) == (2, 3, 2)
    assert row["separate_runs_wall_s"] == pytest.approx(sum(row["separate_run_wall_s_each"]), abs=0.02)
    assert row["speedup"] == pytest.approx(row["separate_runs_wall_s"] / row["corpus_wall_s"], rel=0.02)
    assert json.loads((tmp_path / "results/tiny/benchmark_corpus.json").read_text()) == row
