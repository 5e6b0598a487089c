"""The download against a hostile or absent server: every failure is one line, in bounded time,
and leaves no file behind.

No network: the servers here listen on 127.0.0.1 and end every response within SERVER_LIMIT;
the offline case uses a `.invalid` host, which never resolves (RFC 6761).
"""

from __future__ import annotations

import socketserver
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fraud.core.params import DownloadParams
from fraud.data.download import MIRROR_ENV, download, fetch_url
from fraud.errors import PipelineError
from tests.conftest import check_stage_error, loopback_only, serve_on_loopback

SERVER_LIMIT = 10.0   # seconds: no response of the test server lasts longer
OFFLINE_URL = "http://nonexistent.invalid/creditcard.csv"
CSV = b"Time,V1,Amount,Class\n0,1.0,2.0,0\n"


def _raw(head: str, body: bytes = b"") -> bytes:
    return head.replace("\n", "\r\n").encode() + b"\r\n" + body


# path -> the exact bytes the server answers with (then it closes the connection)
RESPONSES: dict[str, bytes] = {
    "/length-abc.csv": _raw("HTTP/1.1 200 OK\nContent-Length: abc\n", CSV),
    "/length-negative.csv": _raw("HTTP/1.1 200 OK\nContent-Length: -5\n", CSV),
    "/length-huge.csv": _raw("HTTP/1.1 200 OK\nContent-Length: " + "9" * 40 + "\n", CSV),
    "/garbage-status.csv": b"HELLO THERE\r\n\r\n",
    "/many-headers.csv": _raw("HTTP/1.1 200 OK\n" + "X-A: b\n" * 300, CSV),
    "/long-header.csv": _raw("HTTP/1.1 200 OK\nX-Long: " + "a" * 70_000 + "\n", CSV),
    "/bad-chunks.csv": _raw("HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n", b"zz\r\nab\r\n"),
    "/bad-gzip.csv": _raw("HTTP/1.1 200 OK\nContent-Encoding: gzip\nContent-Length: 9\n",
                          b"notgzip!!"),
    "/loop.csv": _raw("HTTP/1.1 302 Found\nLocation: /loop.csv\nContent-Length: 0\n"),
    "/to-file.csv": _raw("HTTP/1.1 302 Found\nLocation: file:///etc/passwd\n"
                         "Content-Length: 0\n"),
    "/empty.csv": b"",
    "/login.csv": _raw("HTTP/1.1 200 OK\nContent-Type: text/html\nContent-Length: 29\n",
                       b"<!DOCTYPE html><html></html>\n"),
}


class RawHandler(socketserver.StreamRequestHandler):
    """Answers RESPONSES[path] byte for byte; /trickle-headers sends a status line and headers
    one byte per second, which no per-read timeout ever trips."""

    def handle(self) -> None:
        self.request.settimeout(SERVER_LIMIT)
        try:
            path = self.rfile.readline().split()[1].decode()
            while self.rfile.readline().strip():
                pass
            if path.startswith("/trickle-headers"):
                self._trickle(b"HTTP/1.1 200 OK\r\n" + b"X-Slow: " + b"a" * 100)
            else:
                self.wfile.write(RESPONSES[path])
        except (OSError, IndexError, KeyError):
            return

    def _trickle(self, data: bytes) -> None:
        ends = time.monotonic() + SERVER_LIMIT
        for byte in data:
            if time.monotonic() > ends:
                return
            self.wfile.write(bytes([byte]))
            self.wfile.flush()
            time.sleep(1.0)


@pytest.fixture(scope="module")
def hostile() -> Iterator[str]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), RawHandler)
    server.daemon_threads = True
    yield from serve_on_loopback(server)


@pytest.fixture(autouse=True)
def _no_proxy_no_mirror(monkeypatch: pytest.MonkeyPatch) -> None:
    loopback_only(monkeypatch)


def bounded(url: str, deadline: float = 60.0, retries: int = 0,
            timeout: float = 5.0) -> DownloadParams:
    return DownloadParams(url=url, sha256=None, timeout=timeout, retries=retries,
                          synthetic_rows=500, synthetic_fraud_rate=0.02, synthetic_seed=0,
                          deadline=deadline, max_bytes=10 ** 6)


def fails_in_one_line(params: DownloadParams, tmp_path: Path, **kwargs: Any) -> str:
    """Runs the download; asserts a PipelineError of one line and no file left."""
    with pytest.raises(PipelineError) as info:
        download(params, tmp_path / "raw.csv", seed=1, **kwargs)
    message = str(info.value)
    assert "\n" not in message and len(message) < 400, message
    assert list(tmp_path.iterdir()) == []
    return message


@pytest.mark.parametrize("path", sorted(set(RESPONSES) - {"/login.csv"}))
def test_a_malformed_response_is_one_line(hostile: str, tmp_path: Path, path: str) -> None:
    start = time.monotonic()
    message = fails_in_one_line(bounded(hostile + path, retries=1), tmp_path,
                                fetch=lambda *a, **k: fetch_url(*a, **k, sleep=lambda s: None))
    assert time.monotonic() - start < 5
    assert hostile + path in message


def test_content_length_abc_is_named(hostile: str, tmp_path: Path) -> None:
    message = fails_in_one_line(bounded(hostile + "/length-abc.csv"), tmp_path)
    assert "invalid Content-Length ('abc')" in message


def test_the_html_page_message_keeps_the_url(hostile: str, tmp_path: Path) -> None:
    message = fails_in_one_line(bounded(hostile + "/login.csv"), tmp_path)
    assert message.startswith(hostile + "/login.csv: looks like an HTML page"), message


def test_the_deadline_covers_the_status_line_and_headers(hostile: str, tmp_path: Path) -> None:
    """One byte a second never trips the 5 s read timeout; the 1 s deadline stops it."""
    start = time.monotonic()
    message = fails_in_one_line(bounded(hostile + "/trickle-headers.csv", deadline=1.0,
                                        retries=3), tmp_path)
    assert "download.deadline of 1 s passed" in message
    assert time.monotonic() - start < 2.0


def test_offline_is_not_retried_and_says_what_to_do(tmp_path: Path) -> None:
    sleeps: list[float] = []
    start = time.monotonic()
    message = fails_in_one_line(bounded(OFFLINE_URL, retries=3), tmp_path,
                                fetch=lambda *a, **k: fetch_url(*a, **k, sleep=sleeps.append))
    assert sleeps == []  # a name that does not resolve is not retried
    assert time.monotonic() - start < 5
    assert message.startswith(f"set {MIRROR_ENV} to a local copy"), message
    assert "cannot resolve 'nonexistent.invalid'" in message and len(message) < 200


def test_offline_with_a_missing_mirror_names_both(tmp_path: Path) -> None:
    message = fails_in_one_line(bounded(OFFLINE_URL), tmp_path,
                                mirror=str(tmp_path / "nowhere.csv.gz"))
    assert message.startswith(f"set {MIRROR_ENV}") and "nowhere.csv.gz: no such file" in message


# --- the stage, as `dvc repro` runs it ---------------------------------------------------------

@pytest.mark.parametrize("url, fragment", [
    (OFFLINE_URL, f"error: set {MIRROR_ENV} to a local copy"),
    ("{hostile}/trickle-headers.csv", "download.deadline of 1 s passed"),
    ("{hostile}/length-abc.csv", "invalid Content-Length"),
])
def test_stage_fails_in_one_line(hostile: str, tmp_path: Path, write_params: Any,
                                 run_stage: Any, url: str, fragment: str) -> None:
    params = write_params({"download.url": url.format(hostile=hostile),
                           "download.deadline": 1, "download.retries": 3})
    out = tmp_path / "data" / "raw.csv"
    start = time.monotonic()
    proc = run_stage("download", "--params", params, "--out", out, timeout=60)
    line = check_stage_error(proc, fragment)
    assert line.startswith("error:") and len(line) < 400, line
    assert time.monotonic() - start < 30  # interpreter start-up included
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["data", "params.yaml"]


def test_a_callers_timer_is_kept(hostile: str, tmp_path: Path) -> None:
    """The deadline's alarm puts back the SIGALRM handler and timer it found."""
    import signal

    def handler(signum: int, frame: Any) -> None:
        raise AssertionError("the caller's alarm rang early")

    previous = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, 100)
    try:
        fails_in_one_line(bounded(hostile + "/length-abc.csv", deadline=30), tmp_path)
        assert signal.getsignal(signal.SIGALRM) is handler
        assert 90 < signal.getitimer(signal.ITIMER_REAL)[0] <= 100
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("url", [
    "http://\x1b[31mred\x1b[0m.invalid/x.csv",           # ANSI escapes
    "http://" + "a" * 300 + ".invalid/x.csv",             # a host past DNS's 253 characters
    "http://127.0.0.1:99999/x.csv",                       # a port out of range
    "http://",
    "http://nonexistent.invalid/" + "x" * 5000 + "\n.csv",
])
def test_a_hostile_url_is_echoed_short_and_escaped(url: str, tmp_path: Path) -> None:
    message = fails_in_one_line(bounded(url, retries=2), tmp_path,
                                fetch=lambda *a, **k: fetch_url(*a, **k, sleep=lambda s: None))
    assert message.isprintable() and len(message) < 400, message
