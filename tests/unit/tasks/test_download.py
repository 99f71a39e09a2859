"""`python -m tasks.download`: weights fetched from a local HTTP server (in a thread), resumed,
refused when cut off or an HTML page, unpacked from a zip and checked against the tiny config."""

import io
import re
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch

from tools.download import main

from support.paths import TINY_CONFIG
from support.weight_files import backbone_file_object, encoder_weights, original_checkpoint, random_like, tiny_model

BACKBONE_NAME = "irCSN_152_ft_kinetics_from_ig65m_f126851907.pth"
TINY_DEPTHS = (1, 1, 1, 1)  # tests/support/tiny.yaml


def saved_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def checkpoint_bytes(depths=TINY_DEPTHS) -> bytes:
    """An original-format checkpoint of a tiny model (the released bmvc_final.pth's layout)."""
    return saved_bytes(original_checkpoint(random_like(tiny_model(depths).state_dict(), seed=5), multi_gpu=True))


def zip_bytes(members: dict) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def backbone_bytes(depths=TINY_DEPTHS) -> bytes:
    return saved_bytes(backbone_file_object("3dcseg", encoder_weights(depths), depths))


class Handler(BaseHTTPRequestHandler):
    """Serves `server.files` {path: (content type, bytes)} with single `bytes=N-` ranges (206, or
    416 past the end) unless `server.honours_ranges` is false; `server.drop_after` cuts every
    body after that many bytes."""

    def do_GET(self):
        server = self.server
        server.ranges.append(self.headers.get("Range"))
        content_type, body = server.files[self.path]
        match = server.honours_ranges and re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        start = int(match[1]) if match else 0
        if start >= len(body) > 0:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(body)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(206 if match else 200)
        if match:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        self.wfile.write(body[start:][:server.drop_after])

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.files, httpd.ranges, httpd.drop_after, httpd.honours_ranges = {}, [], None, True
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def run_download(choice, dest, url):
    return main([choice, "--dest", str(dest), "--url", url, "--config", str(TINY_CONFIG)])


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def test_checkpoint_is_downloaded_checked_and_its_command_printed(server, tmp_path, capsys):
    served = checkpoint_bytes()
    server.files["/bmvc_final.pth"] = ("application/octet-stream", served)
    assert run_download("bmvc_final", tmp_path, server.url + "/bmvc_final.pth") == 0
    final = tmp_path / "bmvc_final.pth"
    assert final.read_bytes() == served
    assert sorted(path.name for path in tmp_path.iterdir()) == ["bmvc_final.pth"]
    assert server.ranges == [None]
    assert capsys.readouterr().out.strip() == (
        f"python main.py -c {TINY_CONFIG} --task infer --wts {final} --input my_video.mp4")


def test_partial_download_is_resumed_with_a_range_request(server, tmp_path):
    served = checkpoint_bytes()
    server.files["/bmvc_final.pth"] = ("application/octet-stream", served)
    half = len(served) // 2
    (tmp_path / "bmvc_final.pth.part").write_bytes(served[:half])
    assert run_download("bmvc_final", tmp_path, server.url + "/bmvc_final.pth") == 0
    assert server.ranges == [f"bytes={half}-"]
    assert (tmp_path / "bmvc_final.pth").read_bytes() == served
    assert not (tmp_path / "bmvc_final.pth.part").exists()


def test_a_200_answer_to_a_range_request_replaces_the_partial_file(server, tmp_path):
    served = checkpoint_bytes()
    server.files["/bmvc_final.pth"] = ("application/octet-stream", served)
    server.honours_ranges = False
    stale = b"stale bytes of another file"
    (tmp_path / "bmvc_final.pth.part").write_bytes(stale)
    assert run_download("bmvc_final", tmp_path, server.url + "/bmvc_final.pth") == 0
    assert server.ranges == [f"bytes={len(stale)}-"]
    assert (tmp_path / "bmvc_final.pth").read_bytes() == served


def test_a_complete_partial_file_answered_416_is_downloaded_again(server, tmp_path):
    served = checkpoint_bytes()
    server.files["/bmvc_final.pth"] = ("application/octet-stream", served)
    (tmp_path / "bmvc_final.pth.part").write_bytes(served + b"extra")
    assert run_download("bmvc_final", tmp_path, server.url + "/bmvc_final.pth") == 0
    assert server.ranges == [f"bytes={len(served) + 5}-", None]
    assert (tmp_path / "bmvc_final.pth").read_bytes() == served


def test_dropped_connection_keeps_the_part_file_and_a_rerun_completes_it(server, tmp_path, capsys):
    served = checkpoint_bytes()
    server.files["/bmvc_final.pth"] = ("application/octet-stream", served)
    server.drop_after = len(served) // 2
    url = server.url + "/bmvc_final.pth"
    assert run_download("bmvc_final", tmp_path, url) == 2
    errors = error_lines(capsys.readouterr().err)
    assert len(errors) == 1 and "broke off" in errors[0] and "resume" in errors[0]
    assert (tmp_path / "bmvc_final.pth.part").read_bytes() == served[:len(served) // 2]
    assert not (tmp_path / "bmvc_final.pth").exists()
    server.drop_after = None
    assert run_download("bmvc_final", tmp_path, url) == 0
    assert server.ranges[-1] == f"bytes={len(served) // 2}-"
    assert (tmp_path / "bmvc_final.pth").read_bytes() == served


@pytest.mark.parametrize("content_type, body", [
    ("text/html", b"Not Found\n"),  # told by its Content-Type
    ("application/octet-stream", b"\n<!DOCTYPE html><html><body>Quota exceeded</body></html>"),  # by its start
])
def test_html_error_page_is_refused(server, tmp_path, capsys, content_type, body):
    server.files["/bmvc_final.pth"] = (content_type, body)
    assert run_download("bmvc_final", tmp_path, server.url + "/bmvc_final.pth") == 2
    errors = error_lines(capsys.readouterr().err)
    assert len(errors) == 1 and "HTML page" in errors[0]
    assert list(tmp_path.iterdir()) == []


def test_backbone_zip_is_unpacked_checked_and_its_override_printed(server, tmp_path, capsys):
    weights = backbone_bytes()
    server.files["/csn.zip"] = ("application/zip", zip_bytes({BACKBONE_NAME: weights, "README.txt": b"ir-CSN"}))
    assert run_download("csn_backbone", tmp_path, server.url + "/csn.zip") == 0
    final = tmp_path / "csn" / BACKBONE_NAME
    assert final.read_bytes() == weights
    assert sorted(path.name for path in (tmp_path / "csn").iterdir()) == [BACKBONE_NAME]
    assert f"model.backbone_weights={final}" in capsys.readouterr().out


def test_zip_member_paths_cannot_write_outside_the_destination(server, tmp_path):
    weights = backbone_bytes()
    server.files["/csn.zip"] = ("application/zip", zip_bytes({f"../../{BACKBONE_NAME}": weights}))
    dest = tmp_path / "a" / "b"
    assert run_download("csn_backbone", dest, server.url + "/csn.zip") == 0
    assert (dest / "csn" / BACKBONE_NAME).read_bytes() == weights
    assert sorted(str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*") if path.is_file()) == [
        f"a/b/csn/{BACKBONE_NAME}"]


@pytest.mark.parametrize("choice, path, make_body, final", [
    ("bmvc_final", "/bmvc_final.pth", lambda: checkpoint_bytes(depths=(1, 2, 1, 1)), "bmvc_final.pth"),
    ("csn_backbone", "/csn.zip", lambda: zip_bytes({BACKBONE_NAME: backbone_bytes(depths=(1, 2, 1, 1))}),
     f"csn/{BACKBONE_NAME}"),
])
def test_file_that_does_not_fit_the_model_is_refused_and_removed(server, tmp_path, capsys, choice, path,
                                                                 make_body, final):
    """Files of a model with two blocks in layer2, checked against the tiny config's one."""
    server.files[path] = ("application/octet-stream", make_body())
    assert run_download(choice, tmp_path, server.url + path) == 2
    errors = error_lines(capsys.readouterr().err)
    assert len(errors) == 1 and f"{tmp_path / final} does not load" in errors[0]
    assert [item for item in tmp_path.rglob("*") if item.is_file()] == []


def test_file_already_present_and_valid_is_not_downloaded_again(server, tmp_path, capsys):
    served = checkpoint_bytes()
    server.files["/bmvc_final.pth"] = ("application/octet-stream", served)
    url = server.url + "/bmvc_final.pth"
    assert run_download("bmvc_final", tmp_path, url) == 0
    capsys.readouterr()
    assert run_download("bmvc_final", tmp_path, url) == 0
    assert server.ranges == [None]
    output = capsys.readouterr()
    assert "already present" in output.err and "--wts" in output.out
