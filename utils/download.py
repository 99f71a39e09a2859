"""Downloading a published file over HTTP(S): resumable, with a progress bar on stderr, refusing
error pages and cut-off transfers with one UserError line.

`fetch(url, part)` writes the file at `url` into `part` (e.g. `saved_models/bmvc_final.pth.part`).
When `part` already holds N bytes from an interrupted run it asks for the rest (`Range: bytes=N-`)
and appends what a 206 answer sends; a 200 answer is the whole file and replaces the partial one;
a 416 answer (the partial file is not shorter than the server's) starts over. A transfer that ends
before the announced size leaves `part` for the next run to resume. An HTML answer (Content-Type
text/html, or a body that starts with `<!DOCTYPE` or `<html`) is refused before anything is
written. Checking the bytes and renaming `part` are the caller's.

`extract_member` copies one file out of a zip archive to a path the caller chooses; the member's
own path is never used for writing, so a name like `../../x` cannot reach outside the folder.
"""

import http.client
import logging
import os
import re
import shutil
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from utils.errors import UserError

logger = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
TIMEOUT_S = 60  # per connection attempt and per read
HTML_STARTS = (b"<!doctype", b"<html")
CONTENT_RANGE = re.compile(r"bytes (\d+)-\d+/(?:\d+|\*)")


def fetch(url: str, part: Path) -> None:
    """Download `url` into `part`, continuing what an earlier run left there."""
    offset = part.stat().st_size if part.is_file() else 0
    response = _open(url, offset)
    if response is None:
        logger.info("%s: the server has no bytes after the %d already here; downloading it again", part, offset)
        offset = 0
        response = _open(url, 0)
    with response:
        start, total = _span(url, response, offset)
        if response.headers.get_content_type() == "text/html":
            raise UserError(f"{url} answered with an HTML page (Content-Type text/html), not the file; "
                            "is the address right?")
        if start:
            logger.info("resuming %s at byte %d", part, start)
        received, broken = _receive(url, response, part, start, total)
    if broken is not None or (total is not None and received < total):
        reason = f" ({broken})" if broken is not None else ""
        raise UserError(f"the download of {url} broke off after {received} of {total or '?'} bytes{reason}; "
                        f"{part} is kept: run the same command again to resume")


def _open(url: str, offset: int):
    """The server's answer to a GET from byte `offset`; None when it answers 416 to a Range."""
    headers = {"User-Agent": "3dcseg-download"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_S)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:
            return None
        raise UserError(f"cannot download {url}: the server answered {error.code} {error.reason}") from None
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as error:
        raise UserError(f"cannot download {url}: {getattr(error, 'reason', error)}") from None


def _span(url: str, response, offset: int) -> tuple[int, int | None]:
    """(byte of the file the answer starts at, size of the whole file or None if not announced)."""
    length = response.headers.get("Content-Length", "")
    length = int(length) if length.isdigit() else None
    if response.status != 206:
        return 0, length
    match = CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
    if match is None or int(match[1]) != offset:
        raise UserError(f"cannot resume {url}: asked for the bytes from {offset}, the server sent "
                        f"Content-Range {response.headers.get('Content-Range')!r}")
    return offset, None if length is None else offset + length


def _receive(url: str, response, part: Path, start: int, total: int | None) -> tuple[int, str | None]:
    """Write the answer's body to `part` (appended after `start` bytes, or from scratch); returns
    the size reached and why the connection broke (None if it ended normally)."""
    chunk, broken = _read(response)
    if start == 0 and chunk.lstrip()[:9].lower().startswith(HTML_STARTS):
        raise UserError(f"{url} answered with an HTML page, not the file; is the address right?")
    received = start
    with part.open("ab" if start else "wb") as handle, \
            tqdm(total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024,
                 desc=part.name.removesuffix(".part"), disable=None) as progress:
        while chunk:
            handle.write(chunk)
            received += len(chunk)
            progress.update(len(chunk))
            chunk, broken = _read(response)
        handle.flush()
        os.fsync(handle.fileno())
    return received, broken


def _read(response) -> tuple[bytes, str | None]:
    try:
        return response.read(CHUNK_BYTES), None
    except (http.client.HTTPException, OSError) as error:
        return b"", f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def extract_member(archive: Path, name: str, target: Path) -> None:
    """Write the one file of the zip `archive` whose base name is `name` (at any depth) to `target`."""
    try:
        with zipfile.ZipFile(archive) as zipped:
            members = [info for info in zipped.infolist()
                       if not info.is_dir() and PurePosixPath(info.filename).name == name]
            if len(members) != 1:
                names = ", ".join(info.filename for info in zipped.infolist()[:10])
                raise UserError(f"{archive} holds {len(members)} files named {name}, not one "
                                f"(it holds: {names or 'nothing'})")
            with zipped.open(members[0]) as source, target.open("wb") as sink:
                shutil.copyfileobj(source, sink, CHUNK_BYTES)
    except (zipfile.BadZipFile, zlib.error, NotImplementedError, EOFError) as error:
        raise UserError(f"{archive} is not a readable zip archive: {error}") from None
