"""Real streams served on 127.0.0.1 from inside the test (MPEG-TS written by PyAV, sent over TCP
and UDP, and an HTTP server serving a growing file), read by Segmenter.stream with a tiny model.
Every loop is bounded in frames and in time."""

import http.server
import io
import socket
import threading
import time

import av
import numpy as np
import pytest

from inference_handlers.segmenter import Segmenter
from tasks.benchmark_live import StreamServer, encode_mpegts, moving_square_frames
from utils.errors import UserError


FRAMES = 14
FAST = ["inference.live.open_timeout=5", "inference.live.read_timeout=1", "inference.live.backoff=0.1"]


@pytest.fixture(scope="module")
def chunks():
    return encode_mpegts(moving_square_frames(FRAMES, 48, 64))


def decode(data: bytes) -> np.ndarray:
    with av.open(io.BytesIO(data)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def file_predictions(segmenter, frames):
    """(mask, probability) of every frame read from a file (the offline engine)."""
    return [(mask, probability) for _, mask, probability in segmenter.predictions(frames)]


def streamed(segmenter, source, limit_s=60.0):
    results, deadline = [], time.monotonic() + limit_s
    for result in segmenter.stream(source, should_stop=lambda: time.monotonic() > deadline):
        results.append(result)
    assert time.monotonic() < deadline, "the stream did not end in time"
    return results


@pytest.mark.parametrize("window", ["centered", "causal"])
def test_tcp_stream_masks_equal_those_of_the_same_frames_from_a_file(tiny_weights, chunks, window):
    segmenter = Segmenter(tiny_weights, overrides=[f"inference.live.window={window}", "inference.live.drop=none",
                                                   "inference.live.reconnect=0", *FAST])
    server = StreamServer([chunks], rate=50)
    try:
        live = streamed(segmenter, server.url)
    finally:
        server.close()
    expected = file_predictions(segmenter, decode(b"".join(chunks)))
    assert len(live) == FRAMES
    assert [pts for pts, _, _ in live] == sorted(pts for pts, _, _ in live)
    for (_, mask, probability), (expected_mask, expected_probability) in zip(live, expected):
        assert np.array_equal(mask, expected_mask) and np.array_equal(probability, expected_probability)


def test_a_dropped_connection_is_reconnected_and_its_frames_counted(tiny_weights, chunks):
    second = encode_mpegts(moving_square_frames(9, 48, 64, seed=1))
    segmenter = Segmenter(tiny_weights, overrides=["inference.live.drop=none", "inference.live.reconnect=2", *FAST])
    server = StreamServer([chunks, second], rate=100)
    try:
        live = streamed(segmenter, server.url)
    finally:
        server.close()
    assert len(live) == FRAMES + 9


def test_a_stalled_source_ends_after_the_read_timeout_with_its_frames(tiny_weights, caplog):
    segmenter = Segmenter(tiny_weights, overrides=["inference.live.window=causal", "inference.live.drop=none",
                                                   "inference.live.reconnect=1", *FAST])
    # 40 frames (opening the stream reads ~20 to tell its rate), then silence, the connection open
    server = StreamServer([encode_mpegts(moving_square_frames(40, 48, 64))], rate=100, hold_s=30)
    try:
        live = streamed(segmenter, server.url)
    finally:
        server.close()
    assert len(live) >= 38  # the demuxer may hold the last frames of a stream that did not end
    # the read timed out in FFmpeg (read_timeout) and the URL was opened again (refused: the end)
    assert any("stalled" in record.getMessage() and "reconnecting" in record.getMessage() for record in caplog.records)


def test_a_source_that_never_opens_is_a_user_error_naming_it(tiny_weights):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    segmenter = Segmenter(tiny_weights, overrides=FAST)
    with pytest.raises(UserError, match=rf"tcp://127.0.0.1:{port}: cannot open"):
        next(segmenter.stream(f"tcp://127.0.0.1:{port}"))


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_udp_stream(tiny_weights, chunks):
    """UDP may lose what is sent before the reader listens: the stream is sent three times over,
    then stops; the read ends at the read timeout with the frames it got."""
    port = free_udp_port()
    stop = threading.Event()

    def send():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for _ in range(3):
                for chunk in chunks:
                    for start in range(0, len(chunk), 1316):
                        sender.sendto(chunk[start:start + 1316], ("127.0.0.1", port))
                    if stop.wait(0.02):
                        return

    segmenter = Segmenter(tiny_weights, overrides=["inference.live.drop=none", "inference.live.reconnect=0", *FAST])
    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        live = streamed(segmenter, f"udp://127.0.0.1:{port}")
    finally:
        stop.set()
        sender.join(5)
    assert FRAMES <= len(live) <= 3 * FRAMES
    assert all(mask.shape == (48, 64) for _, mask, _ in live)


class GrowingFileHandler(http.server.BaseHTTPRequestHandler):
    """Serves the server's `path` as it grows, until `finished` is set and every byte is sent."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "video/mp2t")
        self.end_headers()
        sent, deadline = 0, time.monotonic() + 30
        while time.monotonic() < deadline:
            finished = self.server.finished.is_set()  # before reading: the last bytes are read after it
            data = self.server.path.read_bytes()[sent:]
            if data:
                self.wfile.write(data)
                self.wfile.flush()
                sent += len(data)
            elif finished:
                return
            else:
                time.sleep(0.01)

    def log_message(self, *args):
        pass


def test_http_server_serving_a_growing_file(tiny_weights, chunks, tmp_path):
    path = tmp_path / "growing.ts"
    path.write_bytes(chunks[0])
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), GrowingFileHandler)
    server.path, server.finished = path, threading.Event()
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def grow():
        for chunk in chunks[1:]:
            time.sleep(0.02)
            with path.open("ab") as file:
                file.write(chunk)
        server.finished.set()

    writer = threading.Thread(target=grow, daemon=True)
    writer.start()
    segmenter = Segmenter(tiny_weights, overrides=["inference.live.drop=none", "inference.live.reconnect=0", *FAST])
    try:
        live = streamed(segmenter, f"http://127.0.0.1:{server.server_address[1]}/growing.ts")
    finally:
        writer.join(5)
        server.shutdown()
        server.server_close()
    assert len(live) == FRAMES


def test_overlay_output_to_a_udp_url_is_mpeg_ts_of_every_frame():
    from tasks.live import overlay_output
    frames = moving_square_frames(6, 48, 64)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(2)
        with overlay_output(f"udp://127.0.0.1:{receiver.getsockname()[1]}") as video:
            for frame in frames:
                video.add(frame, np.ones(frame.shape[:2], dtype=np.uint8))
        received = bytearray()
        try:
            while True:
                received += receiver.recv(65536)
        except socket.timeout:
            pass
    decoded = decode(bytes(received))
    assert len(decoded) == 6
    red_minus_blue = decoded[..., 0].astype(float).mean() - decoded[..., 2].astype(float).mean()
    assert red_minus_blue > 60  # tinted red all over (the mask covers the frames); untinted about 20
