"""The download stage's logic: fetch the raw CSV from a URL, a local copy, or generate it.

Whatever the source (plain CSV, gzip, Kaggle's zip), the output is the decompressed CSV, and
its sha256 is checked against `download.sha256`: with a checksum pinned, every source yields
the same bytes, so dvc.lock does not depend on where the data came from.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import hashlib
import logging
import os
import signal
import socket
import stat
import threading
import time
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ..core.declaration import CREDIT_CARD, DataDeclaration
from ..core.files import file_sha256
from ..core.params import (
    GENERATED_SOURCES,
    SYNTHETIC_SOURCE,
    TRANSACTIONS_SOURCE,
    DownloadParams,
    TransactionsParams,
)
from ..core.schema import GZIP_MAGIC, printable, printable_names, sniff_not_csv
from ..errors import PipelineError

log = logging.getLogger(__name__)

MIRROR_ENV = "FRAUD_DATA_MIRROR"
CHUNK = 1 << 20
ZIP_MAGIC = b"PK\x03\x04"
OFFLINE_HINT = (f"to run without a network, point {MIRROR_ENV} (or download.url) at a local "
                "copy (.csv, .csv.gz or Kaggle's creditcard.zip), or set "
                f"download.url: {SYNTHETIC_SOURCE} for generated data")
# Offline, what to do comes first: the reason is the short tail of the line.
OFFLINE_FIRST = (f"set {MIRROR_ENV} to a local copy of the data (.csv, .csv.gz or Kaggle's "
                 f"creditcard.zip), or download.url: {SYNTHETIC_SOURCE}")


def shown_source(source: str, limit: int = 120) -> str:
    """A URL or path for a message: as it is when short and printable (a URL stays
    clickable), else with control characters escaped and cut to `limit` characters."""
    if len(source) <= limit and source.isprintable():
        return source
    escaped = "".join(c if c.isprintable() else repr(c)[1:-1] for c in source)
    return escaped[:limit] + ("…" if len(escaped) > limit else "")


def is_url(source: str) -> bool:
    return source.lower().startswith(("http://", "https://"))


def sources_to_try(url: str, mirror: str | None) -> list[str]:
    """The mirror (if set) comes first; generated data (`synthetic`, `transactions`) is
    never overridden by a mirror."""
    if url in GENERATED_SOURCES:
        return [url]
    sources = [mirror.strip()] if mirror and mirror.strip() else []
    return [*sources, url] if url not in sources else sources


@dataclass(frozen=True)
class Budget:
    """What one download may spend: a monotonic-clock deadline and a size in bytes."""
    ends_at: float
    max_bytes: int
    seconds: float  # the deadline as configured, for messages

    @classmethod
    def start(cls, params: DownloadParams, clock: Callable[[], float] = time.monotonic
              ) -> Budget:
        return cls(ends_at=clock() + params.deadline, max_bytes=params.max_bytes,
                   seconds=params.deadline)

    def remaining(self) -> float:
        return self.ends_at - time.monotonic()

    def check_time(self, source: str, got: int) -> None:
        if self.remaining() <= 0:
            raise PipelineError(f"{source}: download.deadline of {self.seconds:g} s passed "
                                f"({got:,} bytes in); the server is too slow or stalled: try "
                                f"again later, raise download.deadline, or {OFFLINE_HINT}")

    def check_size(self, source: str, size: int, what: str = "is") -> None:
        if size > self.max_bytes:
            raise PipelineError(f"{source}: {what} larger than download.max_bytes "
                                f"({self.max_bytes:,} bytes; the real CSV is 150,828,752); "
                                "not the data set? Raise download.max_bytes if it is")


UNLIMITED = Budget(ends_at=float("inf"), max_bytes=1 << 62, seconds=float("inf"))


# The table's header must end within the first 64 KiB of the (decompressed) source.
HEADER_BYTES = 1 << 16


def _read_or_fail(source: BinaryIO, size: int, label: str) -> bytes:
    """`source.read(size)`, with a read error (EIO from /proc/self/mem, a bad disk) as one line."""
    try:
        return source.read(size)
    except OSError as error:
        if error.errno is None:  # gzip's BadGzipFile, a CRC error: the caller says "corrupt"
            raise
        raise PipelineError(f"{label}: cannot be read ({error.strerror or error}); a data "
                            "source must be a regular file holding the table") from None


def _write_or_fail(target: BinaryIO, chunk: bytes, out: Path) -> None:
    """A full disk is the disk's fault, not the source's: say so, not "corrupt file"."""
    try:
        target.write(chunk)
    except OSError as error:
        raise PipelineError(f"{out}: writing failed ({error.strerror or error}); free space "
                            "on that disk and run again") from None


def _first_line(head: bytes) -> list[str] | None:
    """The column names of `head`'s first line, or None when it is not a CSV header line."""
    end = head.find(b"\n")
    if end < 0:
        return None
    try:
        text = head[:end].decode("utf-8-sig").rstrip("\r")
        names = next(csv.reader([text]))
    except (UnicodeDecodeError, csv.Error, StopIteration):
        return None
    return [name.strip() for name in names]


def check_table_header(label: str, head: bytes, declaration: DataDeclaration) -> None:
    """Refuses a source whose first line is not the declared table's header, before a byte of
    it is written anywhere: nothing but the data reaches data/raw and DVC's cache.

    Quotes nothing from a file that is not the table (it may be /etc/shadow or a process's
    environment): foreign names are named only when the header is mostly the table's.
    """
    sniff_not_csv(label, head[:4096])
    names = _first_line(head)
    expected = declaration.layout(declaration.numeric or ()).raw_columns
    known = set(names or ()) & set(expected)
    if names is None or 2 * len(known) < len(expected):
        shown = f"{', '.join(expected[:3])}, …, {expected[-1]}" if len(expected) > 4 \
            else ", ".join(expected)
        raise PipelineError(f"{label}: not the data set: its first line is not a CSV header "
                            f"with the columns {shown} ({len(expected)} columns); nothing was "
                            "copied. Point download.url (or FRAUD_DATA_MIRROR) at the table's "
                            "file (.csv, .csv.gz or .zip)")
    declaration.resolve(label, names)


def _copy_checked(source: BinaryIO, target: BinaryIO, out: Path, budget: Budget, label: str,
                  expected: DataDeclaration) -> str:
    """Copies `source` to `target` once its first line is the table's header; returns the
    sha256 of the bytes copied (at most `budget.max_bytes`)."""
    head = b""
    while len(head) < HEADER_BYTES and b"\n" not in head:
        chunk = _read_or_fail(source, HEADER_BYTES - len(head), label)
        if not chunk:
            break
        head += chunk
    check_table_header(label, head, expected)
    digest = hashlib.sha256()
    written = 0
    chunk = head
    while chunk:
        written += len(chunk)
        budget.check_size(label, written, "unpacks to")
        digest.update(chunk)
        _write_or_fail(target, chunk, out)
        chunk = _read_or_fail(source, CHUNK, label)
    return digest.hexdigest()


def unpack_to_csv(packed: BinaryIO, out: Path, label: str, budget: Budget = UNLIMITED,
                  expected: DataDeclaration = CREDIT_CARD) -> str:
    """Writes the CSV inside `packed` (plain, gzip or zip, told by magic bytes; a seekable
    file opened for reading) to `out`, once its header is checked against `expected`.

    Returns the sha256 of the CSV bytes written. At most `budget.max_bytes` are written.
    """
    magic = _read_or_fail(packed, 4, label)
    packed.seek(0)
    if magic.startswith(GZIP_MAGIC):
        try:
            with gzip.GzipFile(fileobj=packed, mode="rb") as source, open(out, "wb") as target:
                return _copy_checked(source, target, out, budget, label, expected)
        except (OSError, EOFError, zlib.error) as error:
            raise PipelineError(f"{label}: corrupt gzip file ({printable(str(error))}); "
                                "download it again") from None
    if magic.startswith(ZIP_MAGIC):
        return _unzip(packed, out, label, budget, expected)
    with open(out, "wb") as target:
        return _copy_checked(packed, target, out, budget, label, expected)


def _unzip(packed: BinaryIO, out: Path, label: str, budget: Budget,
           expected: DataDeclaration) -> str:
    try:
        with zipfile.ZipFile(packed) as archive:
            members = [m for m in archive.namelist() if m.lower().endswith(".csv")
                       and not m.startswith("__MACOSX")]
            if len(members) != 1:
                raise PipelineError(f"{label}: expected exactly one .csv inside the zip "
                                    f"(Kaggle's creditcard.zip holds creditcard.csv), "
                                    f"found {printable_names(members) or 'none'}")
            with archive.open(members[0]) as source, open(out, "wb") as target:
                return _copy_checked(source, target, out, budget, label, expected)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as error:
        raise PipelineError(f"{label}: corrupt zip file ({printable(str(error))}); download "
                            "it again") from None
    except (RuntimeError, NotImplementedError) as error:  # encrypted, unknown compression
        raise PipelineError(f"{label}: cannot unpack the zip ({printable(str(error))}); "
                            "expected Kaggle's creditcard.zip") from None


def open_local_source(source: str, budget: Budget = UNLIMITED) -> BinaryIO:
    """Opens a local data source for reading, only if it is a regular file (after symlinks).

    A folder, FIFO (opened without blocking, so it cannot hang), socket or device (/dev/zero,
    /dev/stdin) is refused; a missing file is SourceUnavailable (the next source may work).
    The header check (`unpack_to_csv`) then refuses a regular file that is not the table.
    """
    label = shown_source(source)
    local = Path(source).expanduser()
    try:
        fd = os.open(local, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        raise SourceUnavailable(f"{label}: no such file") from None
    except OSError as error:
        raise PipelineError(f"{label}: cannot be read ({error.strerror or error})") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "a device, FIFO or socket"
        raise PipelineError(f"{label}: {kind}, not a file; a data source must be a regular "
                            "file holding the table (.csv, .csv.gz or .zip)")
    os.set_blocking(fd, True)
    handle = os.fdopen(fd, "rb")
    try:
        budget.check_size(label, info.st_size)
    except PipelineError:
        handle.close()
        raise
    return handle


class SourceUnavailable(Exception):
    """The source could not be reached (network, missing file): the next one may work.
    `offline`: the host name did not resolve, so the likely fix is a local copy."""

    def __init__(self, message: str, offline: bool = False) -> None:
        super().__init__(message)
        self.offline = offline


class _DeadlinePassed(BaseException):
    """Raised by the deadline's alarm wherever the request is (connecting, reading the status
    line, headers or body). A BaseException, so no `except Exception` on the way swallows it."""


@contextlib.contextmanager
def _alarm(budget: Budget) -> Iterator[None]:
    """Interrupts whatever runs inside once `budget`'s deadline passes.

    Per-read timeouts cannot bound a request: a server that sends its status line or headers
    one byte at a time keeps every read short. A SIGALRM timer can, wherever the request
    blocks. Signals reach the main thread only; elsewhere (a library caller's thread) the
    deadline is checked between reads of the body only.
    """
    seconds = budget.remaining()
    outer = signal.getitimer(signal.ITIMER_REAL)[0]  # a caller's own timer is kept
    if seconds == float("inf") or threading.current_thread() is not threading.main_thread() \
            or 0 < outer <= seconds:
        yield
        return

    def ring(signum: int, frame: Any) -> None:
        raise _DeadlinePassed

    started = time.monotonic()
    previous = signal.signal(signal.SIGALRM, ring)
    try:
        signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.001))
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer > 0:
            signal.setitimer(signal.ITIMER_REAL,
                             max(outer - (time.monotonic() - started), 0.001))


def _unresolvable_host(error: BaseException) -> str | None:
    """The host name, when `error` (requests' wrapping of urllib3's) is a name-resolution
    failure: offline, or a misspelt host. Retrying it cannot help."""
    import urllib3

    seen: set[int] = set()
    stack: list[Any] = [error]
    while stack:
        item = stack.pop()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, urllib3.exceptions.NameResolutionError | socket.gaierror):
            conn = getattr(item, "conn", None)
            return str(getattr(conn, "host", "") or "the host")
        stack += [getattr(item, "reason", None), item.__cause__, item.__context__, *item.args]
    return None


def fetch_url(url: str, out: Path, timeout: float, retries: int,
              sleep: Callable[[float], None] = time.sleep, budget: Budget = UNLIMITED) -> None:
    """Streams `url` to `out`; retries network errors and 5xx, within `budget`'s deadline
    and size. Each read waits at most `timeout` (or what is left of the deadline); the whole
    request, status line and headers included, ends at the deadline."""
    label = shown_source(url)
    try:
        with _alarm(budget):
            _fetch_with_retries(url, out, timeout, retries, sleep, budget)
    except _DeadlinePassed:
        got = out.stat().st_size if out.exists() else 0
        budget.check_time(label, got)
        raise PipelineError(f"{label}: download.deadline of {budget.seconds:g} s passed") \
            from None


def _fetch_with_retries(url: str, out: Path, timeout: float, retries: int,
                        sleep: Callable[[float], None], budget: Budget) -> None:
    import requests
    import urllib3

    label = shown_source(url)
    last_error: Exception | None = None
    for attempt in range(retries + 1):
        if attempt:
            wait = min(2 ** (attempt - 1), 30)
            log.warning("retrying %s in %s s (attempt %d of %d): %s", label, wait, attempt + 1,
                        retries + 1, printable(str(last_error), 200))
            budget.check_time(label, 0)
            sleep(min(wait, max(budget.remaining(), 0)))
        budget.check_time(label, 0)
        try:
            with requests.get(url, stream=True,
                              timeout=min(timeout, max(budget.remaining(), 0.01))) as response:
                if response.status_code >= 500:
                    last_error = PipelineError(f"{label}: HTTP {response.status_code} "
                                               f"{printable(response.reason)}")
                    continue
                if response.status_code >= 400:
                    raise PipelineError(f"{label}: HTTP {response.status_code} "
                                        f"{printable(response.reason)}; check download.url "
                                        f"({OFFLINE_HINT})")
                _stream_body(label, response, out, budget)
                return
        except (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema,
                requests.exceptions.MissingSchema, requests.exceptions.TooManyRedirects,
                requests.exceptions.InvalidHeader,
                urllib3.exceptions.LocationValueError) as error:  # retrying cannot help
            raise PipelineError(f"{label}: {_short_reason(error)}; check download.url") from None
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as error:
            host = _unresolvable_host(error)
            if host is not None:
                raise SourceUnavailable(f"cannot resolve {printable(host, 80)} (offline?)",
                                        offline=True) from None
            last_error = error
    if isinstance(last_error, PipelineError):
        raise last_error
    raise SourceUnavailable(f"could not reach {label} after {retries + 1} attempt(s) "
                            f"({_short_reason(last_error)})")


def _short_reason(error: BaseException | None) -> str:
    """The innermost reason urllib3 gives (requests wraps it twice), cut short."""
    while error is not None and getattr(error, "reason", None) is not None \
            and isinstance(error.reason, BaseException):  # type: ignore[attr-defined]
        error = error.reason  # type: ignore[attr-defined]
    if error is not None and error.args and isinstance(error.args[0], BaseException):
        return _short_reason(error.args[0])
    return f"{type(error).__name__}: {printable(str(error), 100)}"


def _stream_body(label: str, response: Any, out: Path, budget: Budget) -> None:
    """Writes the body to `out`, checking the deadline and the size after every read (one
    socket read at a time: a trickle of bytes cannot keep a read going past the deadline)."""
    from tqdm import tqdm

    total = _content_length(label, response.headers.get("Content-Length"))
    if total:
        budget.check_size(label, total, "is")
    got = 0
    with open(out, "wb") as target, tqdm(total=total, unit="B", unit_scale=True,
                                         desc="download", disable=None) as bar:
        while chunk := response.raw.read1(CHUNK, decode_content=True):
            got += len(chunk)
            budget.check_size(label, got, "is")
            target.write(chunk)
            bar.update(len(chunk))
            budget.check_time(label, got)
    if total and got < total and "Content-Encoding" not in response.headers:
        raise OSError(f"connection closed after {got:,} of {total:,} bytes")


def _content_length(label: str, header: str | None) -> int | None:
    """The body's announced size (None when not announced), or one line if it is not a
    number: a malformed header means a broken server or proxy, not the data."""
    if header is None or not header.strip():
        return None
    text = header.split(",")[0].strip()  # "150, 150": repeated by a proxy
    if not text.isdigit() or len(text) > 18:
        raise PipelineError(f"{label}: the server sent an invalid Content-Length "
                            f"({printable(header, 40)}); a broken server or proxy: try "
                            f"again later, or set {MIRROR_ENV} to a local copy")
    return int(text) or None


@dataclass(frozen=True)
class DownloadResult:
    source: str
    sha256: str
    checked: bool


def download(params: DownloadParams, out: Path, seed: int, mirror: str | None = None,
             fetch: Callable[..., None] = fetch_url, scratch: Path | None = None,
             expected: DataDeclaration = CREDIT_CARD,
             simulation: TransactionsParams | None = None) -> DownloadResult:
    """Writes the raw CSV to `out` from the first source that can be reached.

    A source is read only if it is a regular file (or an HTTP body) whose first line, after
    decompression, is the header of the table `expected` names: nothing else reaches `out`.
    `seed` seeds the synthetic source only (the stage passes `download.synthetic_seed`).
    `scratch` holds a fetched body before unpacking (default: `out` + `.part`); it is
    deleted whatever happens. Local files are read in place. All sources together get
    `download.deadline` seconds.
    """
    if mirror and mirror.strip() == SYNTHETIC_SOURCE and params.url != SYNTHETIC_SOURCE:
        raise PipelineError(f"{MIRROR_ENV}={SYNTHETIC_SOURCE}: a mirror is a copy of the real "
                            f"data; for generated data set download.url: {SYNTHETIC_SOURCE}")
    budget = Budget.start(params)
    packed = scratch or out.with_name(out.name + ".part")
    failures: list[SourceUnavailable] = []
    sources = sources_to_try(params.url, mirror)
    for index, source in enumerate(sources):
        if source == SYNTHETIC_SOURCE:
            return _synthetic(params, out, seed)
        if source == TRANSACTIONS_SOURCE:
            return _transactions(simulation or TransactionsParams(), out)
        try:
            try:
                opened = _open_source(source, packed, params, fetch, budget)
            except SourceUnavailable as error:
                failures.append(error)
                if index + 1 < len(sources):  # the last one is the error line itself
                    log.warning("%s; trying %s", error, shown_source(sources[index + 1]))
                continue
            with opened:
                digest = unpack_to_csv(opened, out, shown_source(source), budget, expected)
            _check_sha256(shown_source(source), digest, params.sha256)
        except BaseException:
            out.unlink(missing_ok=True)  # no partial or wrong CSV, whoever calls
            raise
        finally:
            packed.unlink(missing_ok=True)
        return DownloadResult(source=source, sha256=digest, checked=params.sha256 is not None)
    raise unavailable(failures)


def unavailable(failures: list[SourceUnavailable]) -> PipelineError:
    """One short line for sources that could not be reached. Offline (a host name that does
    not resolve), what to do comes first: the reasons are a detail."""
    reasons = "; ".join(str(failure) for failure in failures)
    if any(failure.offline for failure in failures):
        return PipelineError(f"{OFFLINE_FIRST} ({reasons})")
    return PipelineError(f"{reasons}. {OFFLINE_HINT}")


def _open_source(source: str, packed: Path, params: DownloadParams,
                 fetch: Callable[..., None], budget: Budget) -> BinaryIO:
    """The source's bytes, open for reading: an HTTP body fetched to `packed`, or a local
    regular file read in place (no copy: nothing of a refused file is written)."""
    if is_url(source):
        fetch(source, packed, params.timeout, params.retries, budget=budget)
        return open(packed, "rb")
    return open_local_source(source, budget)


def _check_sha256(source: str, digest: str, expected: str | None) -> None:
    if expected is None:
        log.warning("download.sha256 is null: the data's checksum is not checked "
                    "(sha256 %s)", digest)
    elif digest != expected:
        raise PipelineError(f"{source}: checksum mismatch: sha256 of the CSV is {digest}, "
                            f"download.sha256 expects {expected}; the file is corrupt or "
                            "another version: fetch it again, or set download.sha256 to its "
                            "checksum (or null) if you mean to use it")


def _synthetic(params: DownloadParams, out: Path, seed: int) -> DownloadResult:
    from .synthetic import generate_creditcard, write_creditcard_csv

    log.info("generating %d synthetic rows (fraud rate %s, seed %d); download.sha256 does "
             "not apply to generated data", params.synthetic_rows, params.synthetic_fraud_rate,
             seed)
    frame = generate_creditcard(params.synthetic_rows, params.synthetic_fraud_rate, seed)
    write_creditcard_csv(frame, out)
    return DownloadResult(source=SYNTHETIC_SOURCE, sha256=file_sha256(out), checked=False)


def _transactions(settings: TransactionsParams, out: Path) -> DownloadResult:
    from .transactions import write_transactions

    log.info("simulating card transactions: %d customers, %d terminals, %d days from %s "
             "(seed %d)", settings.customers, settings.terminals, settings.days,
             settings.start, settings.seed)
    try:
        rows = write_transactions(settings, out)
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    log.info("%s: %d transactions", out, rows)
    return DownloadResult(source=TRANSACTIONS_SOURCE, sha256=file_sha256(out), checked=False)


def mirror_from_env(environ: Iterable[tuple[str, str]] | None = None) -> str | None:
    env = dict(environ) if environ is not None else os.environ
    value = env.get(MIRROR_ENV)
    return value or None
