"""`--input` naming many videos (datasets/corpus.py, tasks/corpus.py): a folder of videos and
frame folders, a glob and a list file name the same sequences and give the same masks; a video
that does not read fails alone (failures.json, exit status 3); the videos are split over the ranks
by length; the report lists every video. (Killed runs and torchrun ranks:
tests/e2e/test_corpus_killed_and_under_torchrun.py.)"""

import json
import re
import shutil
import threading
from pathlib import Path

import av
import numpy as np
import pytest
import torch

import main
import tasks.corpus_progress
from datasets.corpus import is_corpus_input, list_corpus
from inference_handlers.evaluation.report import RUN_THUMBNAILS
from tasks.corpus_progress import JobProgress
from tasks.distributed import balanced_shares
from utils.errors import UserError

from support.corpus import (HEIGHT, LENGTHS, SEQUENCES, WIDTH, infer_args, masks, noise_frames, run_in,
                            write_corpus)
from support.videos import write_video


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
def one_thread_in_this_module(one_thread):
    """The corpus runs of this module with one intra-op thread (support/shared_fixtures.py)."""


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
