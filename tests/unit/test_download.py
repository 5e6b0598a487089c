"""The download stage: local copies (.csv, .csv.gz, Kaggle .zip), mirror, HTTP, synthetic.

No network: HTTP goes to a local http.server on 127.0.0.1, unreachable means a closed port.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fraud.core.params import DownloadParams
from fraud.data.download import (
    MIRROR_ENV,
    DownloadResult,
    download,
    fetch_url,
    mirror_from_env,
    sources_to_try,
)
from fraud.data.synthetic import generate_creditcard, write_creditcard_csv
from fraud.errors import PipelineError
from tests.conftest import QuietHTTPServer, loopback_only, serve_on_loopback
from tests.credit_card import RAW_COLUMNS

HTML = b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>Login</body></html>\n"


@pytest.fixture(autouse=True)
def _no_proxy_no_mirror(monkeypatch: pytest.MonkeyPatch) -> None:
    loopback_only(monkeypatch)


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The same small CSV as .csv, .csv.gz, Kaggle-style .zip, with its bytes and sha256."""
    folder = tmp_path_factory.mktemp("sources")
    csv = folder / "creditcard.csv"
    write_creditcard_csv(generate_creditcard(500, 0.02, 3), csv)
    data = csv.read_bytes()
    gz = folder / "creditcard.csv.gz"
    gz.write_bytes(gzip.compress(data))
    kaggle = folder / "creditcard.zip"
    with zipfile.ZipFile(kaggle, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("creditcard.csv", data)
        archive.writestr("__MACOSX/._creditcard.csv", b"\x00\x05\x16\x07junk")
    return {"csv": csv, "gz": gz, "zip": kaggle, "bytes": data,
            "sha256": hashlib.sha256(data).hexdigest(), "folder": folder}


def params(url: str | Path, sha256: str | None, retries: int = 0,
           timeout: float = 2.0) -> DownloadParams:
    return bounded(url, sha256=sha256, retries=retries, timeout=timeout)


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def no_sleep_fetch(sleeps: list[float]) -> Any:
    return functools.partial(fetch_url, sleep=sleeps.append)


# --- local sources ------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["csv", "gz", "zip"])
def test_local_sources_give_the_same_bytes(sources: dict[str, Any], kind: str,
                                           tmp_path: Path) -> None:
    out = tmp_path / "raw.csv"
    result = download(params(sources[kind], sources["sha256"]), out, seed=1)
    assert result == DownloadResult(source=str(sources[kind]), sha256=sources["sha256"],
                                    checked=True)
    assert out.read_bytes() == sources["bytes"]
    assert [p.name for p in tmp_path.iterdir()] == ["raw.csv"]  # no .part left


def test_local_source_with_tilde(sources: dict[str, Any], tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(sources["folder"]))
    out = tmp_path / "raw.csv"
    download(params("~/creditcard.csv.gz", sources["sha256"]), out, seed=1)
    assert out.read_bytes() == sources["bytes"]


def test_checksum_mismatch(sources: dict[str, Any], tmp_path: Path) -> None:
    wrong = "0" * 64
    with pytest.raises(PipelineError) as info:
        download(params(sources["gz"], wrong), tmp_path / "raw.csv", seed=1)
    message = str(info.value)
    assert "checksum" in message and sources["sha256"] in message and wrong in message
    assert str(sources["gz"]) in message


def test_sha256_none_works_with_a_warning(sources: dict[str, Any], tmp_path: Path,
                                          caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "raw.csv"
    with caplog.at_level(logging.WARNING, logger="fraud.data.download"):
        result = download(params(sources["zip"], None), out, seed=1)
    assert result.checked is False and result.sha256 == sources["sha256"]
    assert out.read_bytes() == sources["bytes"]
    assert any("sha256 is null" in r.getMessage() and sources["sha256"] in r.getMessage()
               for r in caplog.records if r.levelno == logging.WARNING)


def test_zip_without_csv(tmp_path: Path) -> None:
    packed = tmp_path / "creditcard.zip"
    with zipfile.ZipFile(packed, "w") as archive:
        archive.writestr("readme.txt", "no data here")
    with pytest.raises(PipelineError, match=r"exactly one \.csv inside the zip.*none"):
        download(params(packed, None), tmp_path / "raw.csv", seed=1)


def test_zip_with_two_csvs(sources: dict[str, Any], tmp_path: Path) -> None:
    packed = tmp_path / "creditcard.zip"
    with zipfile.ZipFile(packed, "w") as archive:
        archive.writestr("a.csv", sources["bytes"])
        archive.writestr("b.csv", sources["bytes"])
    with pytest.raises(PipelineError, match=r"exactly one \.csv.*a\.csv.*b\.csv"):
        download(params(packed, None), tmp_path / "raw.csv", seed=1)


@pytest.mark.parametrize(("name", "content", "fragment"), [
    ("creditcard.csv.gz", b"\x1f\x8b\x08\x00garbage", "corrupt gzip"),
    ("creditcard.zip", b"PK\x03\x04garbage", "corrupt zip"),
    ("creditcard.csv", HTML, "HTML"),
    ("creditcard.csv", b"", "empty"),
])
def test_corrupt_local_sources(tmp_path: Path, name: str, content: bytes, fragment: str) -> None:
    source = tmp_path / name
    source.write_bytes(content)
    out = tmp_path / "out" / "raw.csv"
    out.parent.mkdir()
    with pytest.raises(PipelineError, match=fragment):
        download(params(source, None), out, seed=1)
    assert not (out.parent / "raw.csv.part").exists()


def test_html_inside_gzip(tmp_path: Path) -> None:
    source = tmp_path / "creditcard.csv.gz"
    source.write_bytes(gzip.compress(HTML))
    with pytest.raises(PipelineError, match="HTML"):
        download(params(source, None), tmp_path / "raw.csv", seed=1)


# --- mirror -------------------------------------------------------------------------------------

def test_sources_to_try() -> None:
    assert sources_to_try("u", None) == ["u"]
    assert sources_to_try("u", "") == ["u"]
    assert sources_to_try("u", "  ") == ["u"]
    assert sources_to_try("u", " m ") == ["m", "u"]
    assert sources_to_try("u", "u") == ["u"]
    assert sources_to_try("synthetic", "m") == ["synthetic"]


def test_mirror_from_env() -> None:
    assert mirror_from_env([]) is None
    assert mirror_from_env([(MIRROR_ENV, "")]) is None
    assert mirror_from_env([(MIRROR_ENV, "/data/cc.zip")]) == "/data/cc.zip"


def test_mirror_tried_before_a_missing_local_url(sources: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "raw.csv"
    result = download(params(tmp_path / "absent.csv", sources["sha256"]), out, seed=1,
                      mirror=str(sources["gz"]))
    assert result.source == str(sources["gz"])
    assert out.read_bytes() == sources["bytes"]


def test_mirror_tried_before_the_url(sources: dict[str, Any], tmp_path: Path) -> None:
    """The URL is never fetched when the mirror works."""

    def fetch(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"download.url was fetched: {args}")

    url = f"http://127.0.0.1:{closed_port()}/creditcard.csv"
    out = tmp_path / "raw.csv"
    result = download(params(url, sources["sha256"]), out, seed=1, mirror=str(sources["zip"]),
                      fetch=fetch)
    assert result.source == str(sources["zip"]) and out.read_bytes() == sources["bytes"]


def test_missing_mirror_falls_back_to_url(sources: dict[str, Any], tmp_path: Path,
                                          caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "raw.csv"
    mirror = tmp_path / "not-there.zip"
    with caplog.at_level(logging.WARNING, logger="fraud.data.download"):
        result = download(params(sources["csv"], sources["sha256"]), out, seed=1,
                          mirror=str(mirror))
    assert result.source == str(sources["csv"]) and out.read_bytes() == sources["bytes"]
    assert any(str(mirror) in r.getMessage() for r in caplog.records)


def test_mirror_and_url_both_missing(tmp_path: Path) -> None:
    with pytest.raises(PipelineError) as info:
        download(params(tmp_path / "url.csv", None), tmp_path / "raw.csv", seed=1,
                 mirror=str(tmp_path / "mirror.csv"))
    message = str(info.value)
    assert "mirror.csv: no such file" in message and "url.csv: no such file" in message
    assert MIRROR_ENV in message and "synthetic" in message


# --- synthetic ----------------------------------------------------------------------------------

def test_synthetic_ignores_mirror_and_is_deterministic(sources: dict[str, Any],
                                                       tmp_path: Path) -> None:
    first, second, other = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    result = download(params("synthetic", sources["sha256"]), first, seed=5,
                      mirror=str(sources["csv"]))
    assert result.source == "synthetic" and result.checked is False
    assert result.sha256 == hashlib.sha256(first.read_bytes()).hexdigest()
    assert first.read_bytes() != sources["bytes"]  # not the mirror's file
    download(params("synthetic", None), second, seed=5)
    assert second.read_bytes() == first.read_bytes()
    download(params("synthetic", None), other, seed=6)
    assert other.read_bytes() != first.read_bytes()
    assert first.read_bytes().count(b"\n") == 501  # header + synthetic_rows


# --- HTTP ---------------------------------------------------------------------------------------

class Handler(http.server.BaseHTTPRequestHandler):
    routes: dict[str, tuple[int, bytes, str]] = {}
    failures_left: dict[str, int] = {}
    hits: dict[str, int] = {}

    def do_GET(self) -> None:
        self.hits[self.path] = self.hits.get(self.path, 0) + 1
        if self.failures_left.get(self.path, 0) > 0:
            self.failures_left[self.path] -= 1
            self._send(500, b"oops", "text/plain")
            return
        status, body, kind = self.routes.get(self.path, (404, b"not found", "text/plain"))
        self._send(status, body, kind)

    def _send(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def server(sources: dict[str, Any]) -> Iterator[str]:
    Handler.routes = {
        "/creditcard.csv": (200, sources["bytes"], "text/csv"),
        "/creditcard.csv.gz": (200, sources["gz"].read_bytes(), "application/gzip"),
        "/creditcard.zip": (200, sources["zip"].read_bytes(), "application/zip"),
        "/login.csv": (200, HTML, "text/html"),
        "/flaky.csv": (200, sources["bytes"], "text/csv"),
    }
    yield from serve_on_loopback(QuietHTTPServer(("127.0.0.1", 0), Handler))


@pytest.mark.parametrize("error", [ConnectionResetError(104, "reset"), BrokenPipeError(32, "pipe")])
def test_the_test_server_is_quiet_when_a_client_hangs_up(error: OSError,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    with QuietHTTPServer(("127.0.0.1", 0), Handler) as quiet:
        try:
            raise error
        except OSError:
            quiet.handle_error(None, ("127.0.0.1", 1))
    assert capsys.readouterr().err == ""


def test_the_test_server_still_prints_a_real_failure(capsys: pytest.CaptureFixture[str]
                                                     ) -> None:
    with QuietHTTPServer(("127.0.0.1", 0), Handler) as quiet:
        try:
            raise KeyError("a bug in the handler")
        except KeyError:
            quiet.handle_error(None, ("127.0.0.1", 1))
    err = capsys.readouterr().err
    assert "Exception occurred during processing of request" in err and "a bug in" in err


@pytest.fixture(autouse=True)
def _reset_handler() -> None:
    Handler.failures_left = {}
    Handler.hits = {}


@pytest.mark.parametrize("path", ["/creditcard.csv", "/creditcard.csv.gz", "/creditcard.zip"])
def test_http_download(server: str, sources: dict[str, Any], tmp_path: Path, path: str) -> None:
    out = tmp_path / "raw.csv"
    result = download(params(server + path, sources["sha256"]), out, seed=1)
    assert result.source == server + path and result.checked
    assert out.read_bytes() == sources["bytes"]
    assert [p.name for p in tmp_path.iterdir()] == ["raw.csv"]


def test_http_404(server: str, tmp_path: Path) -> None:
    sleeps: list[float] = []
    with pytest.raises(PipelineError) as info:
        download(params(server + "/missing.csv", None, retries=3), tmp_path / "raw.csv", seed=1,
                 fetch=no_sleep_fetch(sleeps))
    message = str(info.value)
    assert "HTTP 404" in message and "/missing.csv" in message and MIRROR_ENV in message
    assert sleeps == [] and Handler.hits["/missing.csv"] == 1  # a 4xx is not retried


def test_http_500_then_success_is_retried(server: str, sources: dict[str, Any],
                                          tmp_path: Path) -> None:
    Handler.failures_left["/flaky.csv"] = 2
    sleeps: list[float] = []
    out = tmp_path / "raw.csv"
    result = download(params(server + "/flaky.csv", sources["sha256"], retries=3), out, seed=1,
                      fetch=no_sleep_fetch(sleeps))
    assert result.checked and out.read_bytes() == sources["bytes"]
    assert Handler.hits["/flaky.csv"] == 3
    assert sleeps == [1, 2]  # exponential back-off, not actually slept


def test_http_500_retries_exhausted(server: str, tmp_path: Path) -> None:
    Handler.failures_left["/flaky.csv"] = 10
    sleeps: list[float] = []
    with pytest.raises(PipelineError, match="HTTP 500"):
        download(params(server + "/flaky.csv", None, retries=2), tmp_path / "raw.csv", seed=1,
                 fetch=no_sleep_fetch(sleeps))
    assert Handler.hits["/flaky.csv"] == 3 and sleeps == [1, 2]


def test_http_html_page(server: str, tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="HTML"):
        download(params(server + "/login.csv", None), tmp_path / "raw.csv", seed=1)


def test_unreachable_url(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}/x.csv"
    with pytest.raises(PipelineError) as info:
        download(params(url, None, retries=0, timeout=2), tmp_path / "raw.csv", seed=1)
    message = str(info.value)
    assert f"could not reach {url} after 1 attempt(s)" in message
    assert MIRROR_ENV in message and "local" in message and "synthetic" in message
    assert not (tmp_path / "raw.csv.part").exists()


def test_unreachable_url_is_retried(tmp_path: Path) -> None:
    sleeps: list[float] = []
    url = f"http://127.0.0.1:{closed_port()}/x.csv"
    with pytest.raises(PipelineError, match=r"after 3 attempt\(s\)"):
        download(params(url, None, retries=2, timeout=2), tmp_path / "raw.csv", seed=1,
                 fetch=no_sleep_fetch(sleeps))
    assert sleeps == [1, 2]


def test_unreachable_mirror_url_falls_back(sources: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "raw.csv"
    mirror = f"http://127.0.0.1:{closed_port()}/creditcard.zip"
    result = download(params(sources["gz"], sources["sha256"]), out, seed=1, mirror=mirror)
    assert result.source == str(sources["gz"]) and out.read_bytes() == sources["bytes"]


# --- the stage, as DVC runs it ------------------------------------------------------------------

def test_stage_uses_the_mirror(sources: dict[str, Any], tmp_path: Path, write_params: Any,
                               run_stage: Any) -> None:
    out = tmp_path / "data" / "raw" / "creditcard.csv"
    params_file = write_params({"download.url": str(tmp_path / "absent.csv"),
                                "download.sha256": sources["sha256"]})
    proc = run_stage("download", "--out", out, "--params", params_file,
                     env={MIRROR_ENV: str(sources["gz"])})
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert out.read_bytes() == sources["bytes"]
    assert [p.name for p in out.parent.iterdir()] == ["creditcard.csv"]
    assert "verified" in proc.stderr


def test_stage_unreachable_leaves_no_file(tmp_path: Path, write_params: Any, run_stage: Any,
                                          stage_error: Any) -> None:
    out = tmp_path / "raw" / "creditcard.csv"
    out.parent.mkdir()
    out.write_bytes(b"an old download\n")
    url = f"http://127.0.0.1:{closed_port()}/x.csv"
    params_file = write_params({"download.url": url, "download.retries": 0,
                                "download.timeout": 2})
    proc = run_stage("download", "--out", out, "--params", params_file)
    stage_error(proc, "error: ", "could not reach", url, MIRROR_ENV, "synthetic",
                only_line=False)  # the failed source is also logged as a warning
    assert list(out.parent.iterdir()) == []


def test_stage_checksum_mismatch_leaves_no_file(sources: dict[str, Any], tmp_path: Path,
                                                write_params: Any, run_stage: Any,
                                                stage_error: Any) -> None:
    out = tmp_path / "raw" / "creditcard.csv"
    params_file = write_params({"download.url": str(sources["zip"]),
                                "download.sha256": "f" * 64})
    proc = run_stage("download", "--out", out, "--params", params_file)
    stage_error(proc, "error: ", "checksum", sources["sha256"], "f" * 64)
    assert list(out.parent.iterdir()) == []


def test_stage_http_404_leaves_no_file(server: str, tmp_path: Path, write_params: Any,
                                       run_stage: Any, stage_error: Any) -> None:
    out = tmp_path / "raw" / "creditcard.csv"
    out.parent.mkdir()
    out.write_bytes(b"an old download\n")
    params_file = write_params({"download.url": server + "/missing.csv", "download.retries": 0})
    proc = run_stage("download", "--out", out, "--params", params_file)
    stage_error(proc, "error: ", "HTTP 404")
    assert list(out.parent.iterdir()) == []


# --- bounded downloads: a total deadline and a size limit ---------------------------------

TRICKLE_INTERVAL = 0.1   # seconds between bytes
SERVER_LIMIT = 15.0      # no response of the test server lasts longer, whatever the client


class Trickle(http.server.BaseHTTPRequestHandler):
    """Sends a body one byte per TRICKLE_INTERVAL (never idle for `timeout`), with a
    Content-Length or chunked (/chunked/...); /fast/... sends it at once."""
    protocol_version = "HTTP/1.1"
    body = b""
    stop = threading.Event()

    def do_GET(self) -> None:
        chunked = self.path.startswith("/chunked")
        self.send_response(200)
        self.send_header("Content-Type", "text/csv")
        self.send_header("Transfer-Encoding" if chunked else "Content-Length",
                         "chunked" if chunked else str(len(self.body)))
        self.end_headers()
        ends = time.monotonic() + SERVER_LIMIT
        step = len(self.body) if self.path.startswith(("/fast", "/chunked/fast")) else 1
        try:
            for start in range(0, len(self.body), step):
                if self.stop.is_set() or time.monotonic() > ends:
                    return
                piece = self.body[start:start + step]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
                self.wfile.flush()
                if step == 1:
                    time.sleep(TRICKLE_INTERVAL)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            return

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def trickle(sources: dict[str, Any]) -> Iterator[str]:
    Trickle.body = sources["bytes"]
    Trickle.stop.clear()
    httpd = QuietHTTPServer(("127.0.0.1", 0), Trickle)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        Trickle.stop.set()
        httpd.shutdown()
        httpd.server_close()


def bounded(url: str | Path, deadline: float = 1800.0, max_bytes: int = 10 ** 9,
            retries: int = 0, timeout: float = 2.0, sha256: str | None = None
            ) -> DownloadParams:
    """Download params for the tests: a small synthetic source, and the bounds given."""
    return DownloadParams(url=str(url), sha256=sha256, timeout=timeout, retries=retries,
                          synthetic_rows=500, synthetic_fraud_rate=0.02, synthetic_seed=0,
                          deadline=deadline, max_bytes=max_bytes)


@pytest.mark.parametrize("path", ["/slow.csv", "/chunked/slow.csv"])
def test_a_trickling_server_stops_at_the_deadline(trickle: str, tmp_path: Path,
                                                  path: str) -> None:
    """One byte every 0.1 s never trips the 2 s timeout; the 1.5 s deadline stops it."""
    start = time.monotonic()
    with pytest.raises(PipelineError) as info:
        download(bounded(trickle + path, deadline=1.5, retries=3), tmp_path / "raw.csv",
                 seed=1)
    elapsed = time.monotonic() - start
    assert "download.deadline of 1.5 s passed" in str(info.value)
    assert 1.5 <= elapsed < 3.5, elapsed
    assert list(tmp_path.iterdir()) == []  # no .part, no partial CSV


def test_the_deadline_covers_retries_and_waits(server: str, tmp_path: Path) -> None:
    Handler.failures_left["/flaky.csv"] = 100
    start = time.monotonic()
    with pytest.raises(PipelineError, match=r"download\.deadline of 1\.2 s passed"):
        download(bounded(server + "/flaky.csv", deadline=1.2, retries=10), tmp_path / "raw.csv",
                 seed=1)
    assert time.monotonic() - start < 3
    assert Handler.hits["/flaky.csv"] <= 3  # waits of 1 s, 2 s ... cut by the deadline


@pytest.mark.parametrize("path", ["/creditcard.csv", "/chunked/fast.csv"])
def test_a_body_larger_than_max_bytes(server: str, trickle: str, tmp_path: Path,
                                      path: str) -> None:
    """Refused from its Content-Length, or once that many bytes came (chunked)."""
    url = (server if path == "/creditcard.csv" else trickle) + path
    with pytest.raises(PipelineError, match=r"larger than download\.max_bytes \(1,000 bytes"):
        download(bounded(url, max_bytes=1000, retries=2), tmp_path / "raw.csv", seed=1)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", ["zip", "gz"])
def test_an_archive_that_unpacks_past_max_bytes(tmp_path: Path, kind: str) -> None:
    """A compression bomb behind the table's header: 20 MB of one byte is 20 KB packed."""
    data = ",".join(RAW_COLUMNS).encode() + b"\n" + b"0" * 20_000_000
    source = tmp_path / f"bomb.{kind}"
    if kind == "gz":
        source.write_bytes(gzip.compress(data))
    else:
        with zipfile.ZipFile(source, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("creditcard.csv", data)
    assert source.stat().st_size < 100_000
    out = tmp_path / "out" / "raw.csv"
    out.parent.mkdir()
    with pytest.raises(PipelineError, match=r"unpacks to larger than download\.max_bytes"):
        download(bounded(source, max_bytes=1_000_000), out, seed=1)
    assert not (out.parent / "raw.csv.part").exists()


def test_a_local_file_larger_than_max_bytes(sources: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="larger than download.max_bytes"):
        download(bounded(sources["csv"], max_bytes=100), tmp_path / "raw.csv", seed=1)
    assert list(tmp_path.iterdir()) == []


def test_a_gzip_with_a_flipped_byte(sources: dict[str, Any], tmp_path: Path) -> None:
    """zlib.error, not OSError: was a traceback."""
    packed = bytearray(gzip.compress(sources["bytes"]))
    packed[len(packed) // 2] ^= 0xFF
    source = tmp_path / "creditcard.csv.gz"
    source.write_bytes(bytes(packed))
    out = tmp_path / "out" / "raw.csv"
    out.parent.mkdir()
    with pytest.raises(PipelineError, match="corrupt gzip file"):
        download(bounded(source), out, seed=1)
    assert list(out.parent.iterdir()) == []


def test_synthetic_mirror_is_refused(sources: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="download.url: synthetic"):
        download(bounded(sources["csv"]), tmp_path / "raw.csv", seed=1, mirror="synthetic")


def test_stage_against_a_trickling_server(trickle: str, tmp_path: Path, write_params: Any,
                                          run_stage: Any, stage_error: Any) -> None:
    """As DVC runs it: the deadline ends it, and nothing is left in the output's folder
    (not even hidden temporaries)."""
    out = tmp_path / "raw" / "creditcard.csv"
    params_file = write_params({"download.url": trickle + "/slow.csv", "download.sha256": None,
                                "download.deadline": 2, "download.timeout": 1,
                                "download.retries": 3})
    start = time.monotonic()
    proc = run_stage("download", "--out", out, "--params", params_file, timeout=30)
    assert time.monotonic() - start < 10
    stage_error(proc, "error: ", "download.deadline of 2 s passed")
    assert list(out.parent.iterdir()) == []


def test_stage_sweeps_what_a_killed_run_left(sources: dict[str, Any], tmp_path: Path,
                                             write_params: Any, run_stage: Any) -> None:
    """Temporaries of a dead process are deleted; a live one's (this test's) are not."""
    out = tmp_path / "raw" / "creditcard.csv"
    out.parent.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    left = [out.parent / f".fraud-tmp.creditcard.csv~{dead}-abc123.csv",
            out.parent / f".fraud-tmp.creditcard.csv~{dead}-abc123.part"]
    live = out.parent / f".fraud-tmp.creditcard.csv~{os.getpid()}-xyz.csv"
    for path in (*left, live):
        path.write_bytes(b"partial")
    # Another output's, in the same folder: swept too (a run-cache restore of its stage would
    # never run that stage again to sweep it).
    other = out.parent / f".fraud-tmp.creditcard.csv.gz~{dead}-abc.csv.gz"
    other.write_bytes(b"partial")
    params_file = write_params({"download.url": str(sources["gz"]),
                                "download.sha256": sources["sha256"]})
    proc = run_stage("download", "--out", out, "--params", params_file)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.parent.iterdir()) == sorted(["creditcard.csv", live.name])
