"""`--input` naming many videos (datasets/corpus.py, tasks/corpus.py): a folder of videos and
frame folders, a glob and a list file name the same sequences and give the same masks; a video
that does not read fails alone (failures.json, exit status 3); a killed run reruns to the same
outputs, skipping the complete videos; torchrun ranks (one machine, or two launchers as two
nodes) split the videos by length and write each once; the report lists every video."""

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

import main
import tasks.corpus_progress
from datasets.corpus import is_corpus_input, list_corpus
from inference_handlers.report import RUN_THUMBNAILS
from network import build_model
from tasks.corpus_progress import JobProgress
from tasks.distributed import balanced_shares
from checkpoints.training import save_checkpoint
from utils.config import load_config, to_dict
from utils.errors import UserError

from support.kills import run_until_killed, temp_files
from support.paths import REPO_ROOT, TINY_CONFIG
from support.videos import write_video


HEIGHT, WIDTH = 32, 48
LENGTHS = {"a.mp4": 6, "b.mkv": 9, "sub/c.mp4": 4, "sub/deeper/d.mp4": 11}  # videos of the clean corpus
SEQUENCES = {"a": 6, "b": 9, "sub__c": 4, "sub__deeper__d": 11, "shots": 5}   # and the frame folder shots/


def noise_frames(count: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8) for _ in range(count)]


def write_corpus(folder: Path) -> Path:
    """The clean corpus: four videos (one nested two folders deep), a folder of 5 PNG frames, a
    text file and a hidden file (neither read)."""
    for seed, (name, length) in enumerate(LENGTHS.items()):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        write_video(folder / name, noise_frames(length, seed))
    (folder / "shots").mkdir()
    for index, frame in enumerate(noise_frames(5, 99)):
        Image.fromarray(frame).save(folder / "shots" / f"frame{index}.png")
    (folder / "notes.txt").write_text("not a video")
    (folder / ".hidden.mp4").write_bytes(b"never read")
    return folder


def truncated_video(path: Path, frames: int = 20) -> Path:
    """An MP4 whose header (at the front: faststart) counts `frames` frames, cut after 60% of its
    bytes: it opens, and ends before the frames it announces."""
    with av.open(str(path), mode="w", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=10)
        stream.height, stream.width, stream.pix_fmt = HEIGHT, WIDTH, "yuv420p"
        for frame in noise_frames(frames, 7):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    data = path.read_bytes()
    path.write_bytes(data[:len(data) * 6 // 10])
    return path


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread, as the subprocesses run with OMP_NUM_THREADS=1 (another thread count
    changes the sums' rounding, and the masks compared byte for byte)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> Path:
    cfg = load_config(TINY_CONFIG)
    path = tmp_path_factory.mktemp("weights") / "tiny.pth"
    save_checkpoint(path, model_state=build_model(cfg.model).state_dict(), epoch=0, iteration=0, config=to_dict(cfg))
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("inputs") / "clips")


def infer_args(weights: Path, input_spec: str, *overrides: str) -> list[str]:
    return ["-c", str(TINY_CONFIG), "--task", "infer", "--wts", str(weights), "--input", input_spec, *overrides]


def masks(run_folder: Path) -> dict[str, bytes]:
    """Every mask of a run folder by its path there."""
    return {str(p.relative_to(run_folder)): p.read_bytes() for p in sorted(run_folder.glob("*/*.png"))}


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory, tiny_weights, corpus) -> Path:
    """results/tiny/clips of one uninterrupted run over the clean corpus folder (the reference)."""
    cwd = tmp_path_factory.mktemp("folder-run")
    with contextlib.chdir(cwd):
        assert main.main(infer_args(tiny_weights, str(corpus))) == 0
    return cwd / "results/tiny/clips"


def run_in(cwd: Path, arguments: list[str], monkeypatch) -> int:
    cwd.mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(cwd)
    return main.main(arguments)


# Listing --------------------------------------------------------------------------------------------

def test_a_folder_with_frames_in_it_is_one_sequence_a_folder_without_is_a_corpus(corpus):
    assert not is_corpus_input(corpus / "shots") and not is_corpus_input(corpus / "a.mp4")
    assert is_corpus_input(corpus) and is_corpus_input(corpus / "sub")
    listed = list_corpus(corpus)
    assert listed.name == "clips" and listed.ignored == 1 and listed.failures == []  # notes.txt; .hidden.mp4 unseen
    assert [(entry.name, entry.path) for entry in listed.entries] == [
        ("a", corpus / "a.mp4"), ("b", corpus / "b.mkv"), ("shots", corpus / "shots"),
        ("sub__c", corpus / "sub/c.mp4"), ("sub__deeper__d", corpus / "sub/deeper/d.mp4")]


def test_glob_and_list_file_name_their_run_folder_and_sequences(corpus, tmp_path):
    assert list_corpus(f"{corpus}/**/*.mp4").name == "clips"
    assert [e.name for e in list_corpus(f"{corpus}/**/*.mp4").entries] == ["a", "sub__c", "sub__deeper__d"]
    assert [e.name for e in list_corpus(f"{corpus}/sub/**/*.mp4").entries] == ["c", "deeper__d"]  # root: sub/
    listing = tmp_path / "batch.txt"
    listing.write_text(f"# one path a line\n\n{corpus}/sub/c.mp4\n../{tmp_path.name}/missing.mkv\n"
                       f"{corpus}/sub/c.mp4\n{corpus}/notes.txt\n")
    listed = list_corpus(f"@{listing}")
    assert listed.name == "batch" and [e.name for e in listed.entries] == [f"{corpus.parent.name}__clips__sub__c"]
    assert [(f["sequence"], f["reason"]) for f in listed.failures] == [
        (f"{tmp_path.name}__missing", "no such file or folder"),
        (f"{corpus.parent.name}__clips__notes.txt",
         "neither a video (.mp4, .avi, .mov, .mkv, .webm, .m4v) nor a folder of frames")]


def test_two_inputs_with_one_sequence_name_are_refused_with_one_line(tmp_path, tiny_weights, monkeypatch, capsys):
    (tmp_path / "clips/a").mkdir(parents=True)
    write_video(tmp_path / "clips/a/b.mp4", noise_frames(2, 0))
    (tmp_path / "clips/a__b.mp4").write_bytes(b"")
    with pytest.raises(UserError, match=r"a/b\.mp4 and .*a__b\.mp4 would both be the sequence 'a__b'"):
        list_corpus(tmp_path / "clips")
    assert run_in(tmp_path / "run", infer_args(tiny_weights, str(tmp_path / "clips")), monkeypatch) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error: --input ")


@pytest.mark.parametrize("spec, message", [("empty", "no video"), ("'*.webm'", "matches no file"),
                                           ("@none.txt", "no such list file")])
def test_no_video_at_all_is_a_user_error(tmp_path, tiny_weights, monkeypatch, capsys, spec, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty/readme.txt").write_text("no video here")
    assert run_in(tmp_path, infer_args(tiny_weights, spec.strip("'")), monkeypatch) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("error: --input") and message in last
    assert (tmp_path / "results").exists() == (spec == "empty")  # a list file or a glob: refused at set-up


def test_longest_videos_go_first_to_the_least_loaded_rank():
    assert balanced_shares([5, 3, 3, 2, 2, 1], 2) == [[0, 3, 5], [1, 2, 4]]  # 8 frames each (round robin: 10, 6)
    assert balanced_shares([1, 1, 2], 2) == [[2], [0, 1]]  # 2 each (in the given order: 3 and 1)
    assert balanced_shares([1, 1, 1], 4) == [[0], [1], [2], []]


def test_rank_0s_bar_shows_the_videos_and_frames_of_every_rank(monkeypatch):
    """Two ranks' JobProgress on one store: rank 0's bar counts rank 1's frames and videos; a
    video's estimated frames count fully once it ends, whatever it decoded or failed."""
    store = torch.distributed.HashStore()
    monkeypatch.setattr(tasks.corpus_progress, "shared_store", lambda: store)
    monkeypatch.setattr(tasks.corpus_progress, "world_size", lambda: 2)
    with JobProgress(30, 3, 0, show=True) as rank_0, JobProgress(30, 3, 0, show=False) as rank_1:
        rank_1.start_video(10)
        rank_1.update(4)
        rank_1.end_video("done")
        rank_1.start_video(12)
        rank_1.update(20)  # more frames than estimated: counted up to the estimate
        assert rank_1.video_frames == 12
        rank_1.end_video("failed")
        rank_0.start_video(8)
        rank_0.update(3)
        rank_0.end_video("skipped")
        waiting = threading.Thread(target=rank_1.wait_for_all_ranks)  # returns once both have said so
        waiting.start()
        rank_0.wait_for_all_ranks()
        waiting.join(timeout=60)
        assert not waiting.is_alive()
        assert rank_0.bar.n == 30 and rank_0.bar.postfix == "videos 3/3, 1 failed"


# One process ---------------------------------------------------------------------------------------

def test_folder_glob_and_list_file_give_the_same_masks(folder_run, tmp_path, tiny_weights, corpus, monkeypatch):
    reference = masks(folder_run)
    assert {name.split("/")[0] for name in reference} == set(SEQUENCES)
    assert len(reference) == sum(SEQUENCES.values())  # every frame of every video once
    listing = corpus.parent / "all.txt"
    listing.write_text("".join(f"clips/{name}\n" for name in [*LENGTHS, "shots"]))
    for spec, run_folder in ((f"{corpus}/**/*", "clips"), (f"@{listing}", "all")):
        assert run_in(tmp_path / run_folder, infer_args(tiny_weights, spec), monkeypatch) == 0
        assert masks(tmp_path / run_folder / "results/tiny" / run_folder) == reference, spec


def test_unreadable_videos_fail_alone_and_the_run_ends_with_status_3(tmp_path, tiny_weights, monkeypatch, capsys):
    clips = write_corpus(tmp_path / "clips")
    (clips / "corrupt.mp4").write_bytes(np.random.default_rng(0).bytes(3000))
    (clips / "zero.mp4").write_bytes(b"")
    truncated_video(clips / "cut.mp4")
    status = run_in(tmp_path, infer_args(tiny_weights, str(clips)), monkeypatch)
    out = capsys.readouterr().out.strip().splitlines()
    assert status == main.SOME_VIDEOS_FAILED == 3
    run_folder = tmp_path / "results/tiny/clips"
    assert {name.split("/")[0] for name in masks(run_folder)} >= set(SEQUENCES)
    assert all((run_folder / name / ".complete.json").is_file() for name in SEQUENCES)
    assert not (run_folder / "cut/.complete.json").exists()  # failed while predicted: not complete
    failures = json.loads((run_folder / "failures.json").read_text())
    assert (failures["videos"], failures["failed"]) == (len(SEQUENCES) + 3, 3)
    reasons = {Path(f["path"]).name: f["reason"] for f in failures["failures"]}
    assert reasons["zero.mp4"] == "empty file (0 bytes)"
    assert reasons["corrupt.mp4"].startswith(f"cannot decode {clips / 'corrupt.mp4'}")
    assert re.fullmatch(rf"{clips / 'cut.mp4'} has only (\d+) frames, frame \1 requested", reasons["cut.mp4"])
    assert out[-2].startswith(f"{len(SEQUENCES) + 3} videos: {len(SEQUENCES)} done, 0 skipped (complete), 3 failed; "
                              f"{sum(SEQUENCES.values())} frames predicted in ")
    assert out[-1] == (f"3 of {len(SEQUENCES) + 3} videos failed; paths and reasons in "
                       f"{run_folder.relative_to(tmp_path)}/failures.json")


def test_report_lists_every_video_with_its_frames_thumbnails_and_overlay(tmp_path, tiny_weights, corpus, monkeypatch):
    shutil.copytree(corpus, tmp_path / "clips")
    (tmp_path / "clips_more").mkdir()
    (tmp_path / "clips_more/zero.mp4").write_bytes(b"")
    write_video(tmp_path / "clips_more/e.mp4", noise_frames(3, 5))
    assert run_in(tmp_path, infer_args(tiny_weights, "clips*/**/*", "inference.overlay=true"), monkeypatch) == 3
    run_folder = tmp_path / "results/tiny" / tmp_path.name  # the glob's folder before its first wildcard
    page = (run_folder / "report.html").read_text()
    videos = re.search(r'<table id="videos".*?</table>', page, re.S)[0]
    rows = re.findall(r"<tr><td>([^<]+)</td><td class=\"num\" data-value=\"(\d+)\">.*?</tr>", videos, re.S)
    expected = {f"clips__{name}": count for name, count in SEQUENCES.items()} | {"clips_more__e": 3}
    assert dict((name, int(count)) for name, count in rows) == expected
    for name in expected:
        row = re.search(rf"<tr><td>{name}</td>.*?</tr>", videos, re.S)[0]
        assert re.search(r'<a href="([^"]+)">overlay video</a>', row)[1] == f"overlays/{name}.mp4"
        assert (run_folder / f"overlays/{name}.mp4").is_file()
        assert row.count('alt="thumbnail"') == min(expected[name], RUN_THUMBNAILS // len(expected))  # spread
    assert "clips_more/zero.mp4" in re.search(r'<table id="failures".*?</table>', page, re.S)[0]


# Killed, several processes, several nodes -------------------------------------------------------------

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
    from tasks import benchmark
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert benchmark.main(["-c", str(TINY_CONFIG), "--corpus", "2", "--frames", "3", "--height", "32", "--width", "48",
                           "inference.report=false"]) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (row["videos"], row["frames_per_video"], len(row["separate_run_wall_s_each"])) == (2, 3, 2)
    assert row["separate_runs_wall_s"] == pytest.approx(sum(row["separate_run_wall_s_each"]), abs=0.02)
    assert row["speedup"] == pytest.approx(row["separate_runs_wall_s"] / row["corpus_wall_s"], rel=0.02)
    assert json.loads((tmp_path / "results/tiny/benchmark_corpus.json").read_text()) == row
