"""A data source reads only data: the download stage copies a local file or an HTTP body into
data/raw (and so into DVC's cache, which `dvc push` publishes) only when it is a regular file
whose first line, after decompression, is the table's header. Anything else is refused with
one line that quotes none of its bytes, and nothing is written.

`SECRET_SOURCES` is the corpus `tools/adversarial.py` reruns: name -> a builder that makes the
hostile source in a scratch folder and returns what `download.url` (or the mirror) would say.
"""

from __future__ import annotations

import errno
import gzip
import io
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fraud.core.params import DownloadParams
from fraud.data import download as download_module
from fraud.data.download import MIRROR_ENV, download, unpack_to_csv
from fraud.data.synthetic import generate_creditcard, write_creditcard_csv
from fraud.errors import PipelineError
from tests.conftest import loopback_only
from tests.credit_card import RAW_COLUMNS

# What a secret looks like: if any of it shows in a message, the check leaked it.
SECRET = b"root:$6$saltsalt$c2VjcmV0aGFzaA:19000:0:99999:7:::\nAWS_SECRET=hunter2\n"
LEAK_MARKERS = ("saltsalt", "hunter2", "AWS_SECRET", "root:")


def _secret(folder: Path) -> Path:
    path = folder / "shadow"
    path.write_bytes(SECRET)
    path.chmod(0o640)
    return path


def _relative(folder: Path) -> str:
    """`../../…/shadow` from the working directory, as a params edit would write it."""
    return os.path.relpath(_secret(folder), Path.cwd())


def _symlink(folder: Path) -> str:
    link = folder / "creditcard.csv"
    link.symlink_to(_secret(folder))
    return str(link)


def _gzipped(folder: Path) -> str:
    path = folder / "creditcard.csv.gz"
    path.write_bytes(gzip.compress(SECRET))
    return str(path)


def _zipped(folder: Path) -> str:
    path = folder / "creditcard.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("creditcard.csv", SECRET)
    return str(path)


def _fifo(folder: Path) -> str:
    """Opening a FIFO for reading blocks until a writer comes: it must not hang the stage."""
    path = folder / "creditcard.csv"
    os.mkfifo(path)
    return str(path)


def _header_then_secret(folder: Path) -> str:
    """A header line that is almost the table's: its foreign names may be quoted, not the rest."""
    path = folder / "creditcard.csv"
    path.write_bytes(b"Time,V1\n" + SECRET)
    return str(path)


def _environ(folder: Path) -> str:
    os.environ["FRAUD_TEST_MARKER"] = "hunter2"  # the process's environment holds a secret
    return "/proc/self/environ"


SECRET_SOURCES: dict[str, Callable[[Path], str]] = {
    "a secret file (/etc/shadow)": lambda folder: str(_secret(folder)),
    "a relative ../../ path to it": _relative,
    "a symlink named creditcard.csv to it": _symlink,
    "the secret gzipped": _gzipped,
    "the secret inside a zip": _zipped,
    "/proc/self/environ": _environ,
    "/proc/self/mem": lambda folder: "/proc/self/mem",
    "/dev/zero": lambda folder: "/dev/zero",
    "a FIFO": _fifo,
    "a folder": lambda folder: str(folder),
    "a near-header then secrets": _header_then_secret,
}


def _params(url: str) -> DownloadParams:
    return DownloadParams(url=url, sha256=None, timeout=2.0, retries=0, synthetic_rows=100,
                          synthetic_fraud_rate=0.1, synthetic_seed=0, deadline=30.0,
                          max_bytes=1 << 30)


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    loopback_only(monkeypatch)
    monkeypatch.delenv("FRAUD_TEST_MARKER", raising=False)


@pytest.mark.parametrize("name", list(SECRET_SOURCES))
def test_a_source_that_is_not_the_table_is_refused_unread(name: str, tmp_path: Path) -> None:
    source = SECRET_SOURCES[name](tmp_path)
    out = tmp_path / "raw" / "creditcard.csv"
    out.parent.mkdir()
    with pytest.raises(PipelineError) as info:
        download(_params(source), out, seed=1)
    message = str(info.value)
    assert "\n" not in message
    assert not any(marker in message for marker in LEAK_MARKERS), message
    assert list(out.parent.iterdir()) == []  # nothing written, not even a scratch file


@pytest.mark.parametrize("name", ["a secret file (/etc/shadow)", "/proc/self/environ"])
def test_a_mirror_that_is_not_the_table_is_refused(name: str, tmp_path: Path) -> None:
    """FRAUD_DATA_MIRROR is tried first; a readable non-table there is an error, not a
    fallback (the user pointed at it)."""
    mirror = SECRET_SOURCES[name](tmp_path)
    out = tmp_path / "creditcard.csv"
    with pytest.raises(PipelineError, match="not the data set"):
        download(_params(str(tmp_path / "absent.csv")), out, seed=1, mirror=mirror)
    assert not out.exists()


def test_the_refusals_say_what_was_wrong(tmp_path: Path) -> None:
    expected = {"a secret file (/etc/shadow)": "not the data set",
                "/proc/self/mem": "cannot be read",
                "/dev/zero": "a device, FIFO or socket, not a file",
                "a FIFO": "a device, FIFO or socket, not a file",
                "a folder": "a folder, not a file",
                "a near-header then secrets": "not the data set"}
    for name, fragment in expected.items():
        folder = tmp_path / str(len(os.listdir(tmp_path)))
        folder.mkdir()
        with pytest.raises(PipelineError, match=fragment):
            download(_params(SECRET_SOURCES[name](folder)), folder / "out.csv", seed=1)


def test_a_mostly_right_header_names_its_foreign_columns(tmp_path: Path) -> None:
    """A renamed column in the real table is a user's mistake worth naming."""
    source = tmp_path / "creditcard.csv"
    header = [("Amt" if c == "Amount" else c) for c in RAW_COLUMNS]
    source.write_text(",".join(header) + "\n" + ",".join(["0"] * len(header)) + "\n")
    with pytest.raises(PipelineError, match=r"column 30 is named 'Amt', expected 'Amount'"):
        download(_params(str(source)), tmp_path / "out.csv", seed=1)


@pytest.fixture
def table(tmp_path: Path) -> Path:
    path = tmp_path / "table" / "creditcard.csv"
    path.parent.mkdir()
    write_creditcard_csv(generate_creditcard(200, 0.05, 1), path)
    return path


def test_the_table_through_a_symlink_is_read(table: Path, tmp_path: Path) -> None:
    link = tmp_path / "link.csv"
    link.symlink_to(table)
    out = tmp_path / "out.csv"
    download(_params(str(link)), out, seed=1)
    assert out.read_bytes() == table.read_bytes()


@pytest.mark.parametrize("quote", [b'"', b""])
def test_a_quoted_or_bare_header_is_the_table(table: Path, tmp_path: Path, quote: bytes) -> None:
    """Kaggle's file quotes its header names ("Time","V1",…); a user's export may not."""
    header, rows = table.read_bytes().split(b"\n", 1)
    names = header.replace(b'"', b"").split(b",")
    data = b",".join(quote + name + quote for name in names) + b"\r\n" + rows
    source = tmp_path / "table.csv"
    source.write_bytes(data)
    download(_params(str(source)), tmp_path / "out.csv", seed=1)
    assert (tmp_path / "out.csv").read_bytes() == data


def test_no_permission_is_widened(table: Path, tmp_path: Path) -> None:
    """The copy of a readable table is an ordinary new file; a refused one is never made."""
    table.chmod(0o600)
    out = tmp_path / "out.csv"
    download(_params(str(table)), out, seed=1)
    assert out.stat().st_mode & 0o077 <= (0o777 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class _FullDisk(io.BytesIO):
    def write(self, data: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("kind", ["csv", "gz", "zip"])
def test_a_full_disk_is_not_a_corrupt_source(kind: str, table: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Unpacking onto a full disk said "corrupt gzip file … download it again"."""
    data = table.read_bytes()
    packed = {"csv": data, "gz": gzip.compress(data)}.get(kind)
    if packed is None:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("creditcard.csv", data)
        packed = buffer.getvalue()
    monkeypatch.setattr(download_module, "open", lambda *a, **k: _FullDisk(),
                        raising=False)
    with pytest.raises(PipelineError, match=r"out\.csv: writing failed \(No space left on "
                                            r"device\); free space"):
        unpack_to_csv(io.BytesIO(packed), tmp_path / "out.csv", "source")


def test_stage_refuses_a_secret_and_writes_nothing(tmp_path: Path, write_params: Any,
                                                   run_stage: Any, stage_error: Any) -> None:
    out = tmp_path / "data" / "raw" / "creditcard.csv"
    params_file = write_params({"download.url": str(_secret(tmp_path)),
                                "download.sha256": None})
    proc = run_stage("download", "--out", out, "--params", params_file,
                     env={MIRROR_ENV: ""})
    line = stage_error(proc, "error: ", "not the data set", "nothing was copied")
    assert not any(marker in proc.stderr for marker in LEAK_MARKERS), line
    assert not out.parent.exists() or list(out.parent.iterdir()) == []
