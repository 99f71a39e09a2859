"""`main.py --task infer --input SOURCE` on live sources, as a user runs it: a stream piped on
stdin, SIGTERM during a TCP stream, a source that never opens. Each run is bounded in frames and
in time."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import av
import numpy as np
import pytest

import main
from datasets.io import read_mask
from tasks.benchmark_live import StreamServer, encode_mpegts, moving_square_frames
from utils.config import load_config

from support.paths import REPO_ROOT, TINY_CONFIG

FAST = ["inference.live.open_timeout=5", "inference.live.read_timeout=2", "inference.live.backoff=0.1"]



def command(weights, source, *overrides):
    return [sys.executable, str(REPO_ROOT / "main.py"), "-c", str(TINY_CONFIG), "--task", "infer", "--wts",
            str(weights), "--input", source, *FAST, *overrides]


def check_outputs_complete(folder, name):
    """Masks, frames.csv and latency.json agree: one mask per frame processed."""
    summary = json.loads((folder / "latency.json").read_text())
    masks = sorted((folder / name).glob("*.png"))
    rows = (folder / "frames.csv").read_text().splitlines()[1:]
    assert len(masks) == len(rows) == summary["frames_processed"] > 0
    assert [row.split(",")[0] for row in rows] == [mask.stem for mask in masks]
    assert not list(folder.rglob(".*.tmp"))
    return summary, masks


@pytest.mark.slow
def test_a_stream_piped_on_stdin_with_raw_masks_on_stdout_and_an_overlay_file(tmp_path, tiny_weights):
    frames = 12
    data = b"".join(encode_mpegts(moving_square_frames(frames, 48, 64)))
    overlay = tmp_path / "overlay.mp4"
    done = subprocess.run(command(tiny_weights, "-", "inference.live.window=causal", "inference.live.masks_to_stdout=true",
                                  f"inference.live.overlay_output={overlay}"),
                          input=data, capture_output=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr.decode()
    summary, masks = check_outputs_complete(tmp_path / "results/tiny/stdin", "stdin")
    assert summary["frames_read"] == summary["frames_processed"] == frames and summary["frames_dropped"] == 0
    assert summary["drop"] == "none"  # auto: a pipe is not dropped from
    raw = np.frombuffer(done.stdout, dtype=np.uint8).reshape(frames, 48, 64)
    assert np.array_equal(raw, np.stack([read_mask(mask) for mask in masks]) * 255)
    with av.open(str(overlay)) as container:
        assert sum(1 for _ in container.decode(video=0)) == frames
    last_lines = [line for line in done.stderr.decode().splitlines() if "live stdin" in line]
    assert len(last_lines) == 1 and f"{frames} frames read, {frames} processed, 0 dropped" in last_lines[0]


@pytest.mark.slow
def test_sigterm_during_a_stream_ends_it_cleanly_with_its_outputs_complete(tmp_path, tiny_weights):
    chunks = encode_mpegts(moving_square_frames(400, 48, 64))
    server = StreamServer([chunks], rate=20)
    process = subprocess.Popen(command(tiny_weights, server.url, "inference.live.drop=none"), cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    folder = tmp_path / f"results/tiny/tcp_127_0_0_1_{server.port}"
    try:
        deadline = time.monotonic() + 120
        while not list((folder / folder.name).glob("*.png")) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
        server.close()
    assert process.returncode == 128 + signal.SIGTERM, stderr.decode()
    summary, _ = check_outputs_complete(folder, folder.name)
    assert summary["stopped"] == "SIGTERM" and summary["frames_processed"] == summary["frames_read"] < 400
    assert sum("live tcp://" in line for line in stderr.decode().splitlines()) == 1


@pytest.mark.slow
def test_a_pipe_that_stalls_ends_after_the_read_timeout_with_its_outputs_complete(tmp_path, tiny_weights):
    """FFmpeg cannot interrupt the read of a pipe: the reader gives up waiting (read_timeout)."""
    data = b"".join(encode_mpegts(moving_square_frames(40, 48, 64)))
    process = subprocess.Popen(command(tiny_weights, "-", "inference.live.read_timeout=1"), cwd=tmp_path,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        process.stdin.write(data)  # 40 frames, and the pipe stays open without more
        process.stdin.flush()
        process.wait(timeout=240)
        stderr = process.stderr.read().decode()
    finally:
        process.kill()
        process.stdin.close()
    assert process.returncode == 0, stderr
    summary, _ = check_outputs_complete(tmp_path / "results/tiny/stdin", "stdin")
    # the demuxer and the decoder hold the last few frames of a stream that did not end
    assert summary["end"].startswith("stalled") and summary["frames_processed"] >= 30
    assert sum("ended: stalled" in line for line in stderr.splitlines()) == 1


@pytest.mark.slow
def test_a_pipe_that_never_sends_is_one_error_line_after_the_open_timeout(tmp_path, tiny_weights):
    process = subprocess.Popen(command(tiny_weights, "-", "inference.live.open_timeout=2"), cwd=tmp_path,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _, stderr = process.communicate(timeout=240)  # stdin stays open: communicate closes it only at the end
    finally:
        process.kill()
    errors = [line for line in stderr.decode().splitlines() if line.startswith("error:")]
    assert process.returncode == 2 and len(errors) == 1 and errors[0].startswith("error: --input stdin: ")


def test_a_source_that_never_opens_is_one_error_line_naming_it(tmp_path, tiny_weights, monkeypatch, capsys):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    monkeypatch.chdir(tmp_path)
    status = main.main(["-c", str(TINY_CONFIG), "--task", "infer", "--wts", str(tiny_weights),
                        "--input", f"tcp://127.0.0.1:{port}", *FAST])
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert status == 2 and len(errors) == 1 and f"tcp://127.0.0.1:{port}" in errors[0], errors


def test_a_bad_url_scheme_is_a_missing_input_not_a_stream(tmp_path, tiny_weights, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    status = main.main(["-c", str(TINY_CONFIG), "--task", "infer", "--wts", str(tiny_weights),
                        "--input", "gopher://127.0.0.1/stream"])
    assert status == 2 and "--input: no such file or folder: gopher://" in capsys.readouterr().err


def test_the_run_folder_of_a_url_leaves_its_password_out(tmp_path, tiny_weights, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    status = main.main(["-c", str(TINY_CONFIG), "--task", "infer", "--wts", str(tiny_weights),
                        "--input", "tcp://user:secret@127.0.0.1:1/cam", *FAST])
    err = capsys.readouterr().err
    assert status == 2 and "secret" not in err
    assert (tmp_path / "results/tiny/tcp_127_0_0_1_1_cam").is_dir()
    assert not any("secret" in path.name for path in tmp_path.rglob("*"))
    assert os.path.exists(tmp_path / "results/tiny/tcp_127_0_0_1_1_cam/infer.log")


def test_of_inference_live_only_the_window_mode_changes_a_files_outputs_fingerprint(tiny_weights):
    from tasks.infer import outputs_fingerprint
    centered = outputs_fingerprint(load_config(TINY_CONFIG), str(tiny_weights))
    assert "live" not in centered["inference"] and "window" not in centered["inference"]  # as before the key
    assert outputs_fingerprint(load_config(TINY_CONFIG, ["inference.live.read_timeout=1"]), str(tiny_weights)) == centered
    causal = outputs_fingerprint(load_config(TINY_CONFIG, ["inference.live.window=causal"]), str(tiny_weights))
    assert causal != centered and causal["inference"]["window"] == "causal"
