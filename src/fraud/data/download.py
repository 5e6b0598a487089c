"""The download stage's logic: fetch the raw CSV from a URL, a local copy, or generate it.

Whatever the source (plain CSV, gzip, Kaggle's zip), the output is the decompressed CSV, and
its sha256 is checked against `download.sha256`: with a checksum pinned, every source yields
the same bytes, so dvc.lock does not depend on where the data came from.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import shutil
import time
import zipfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import PipelineError
from ..files import file_sha256
from ..params import SYNTHETIC_SOURCE, DownloadParams
from ..schema import GZIP_MAGIC, printable, printable_names, sniff_not_csv

log = logging.getLogger(__name__)

MIRROR_ENV = "FRAUD_DATA_MIRROR"
CHUNK = 1 << 20
ZIP_MAGIC = b"PK\x03\x04"
OFFLINE_HINT = (f"to run without a network, point {MIRROR_ENV} (or download.url) at a local "
                "copy (.csv, .csv.gz or Kaggle's creditcard.zip), or set "
                f"download.url: {SYNTHETIC_SOURCE} for generated data")


def is_url(source: str) -> bool:
    return source.lower().startswith(("http://", "https://"))


def sources_to_try(url: str, mirror: str | None) -> list[str]:
    """The mirror (if set) comes first; `synthetic` is never overridden by a mirror."""
    if url == SYNTHETIC_SOURCE:
        return [SYNTHETIC_SOURCE]
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


def _copy_hashing(source: BinaryIO, target: BinaryIO, budget: Budget, label: str) -> str:
    digest = hashlib.sha256()
    written = 0
    while chunk := source.read(CHUNK):
        written += len(chunk)
        budget.check_size(label, written, "unpacks to")
        digest.update(chunk)
        target.write(chunk)
    return digest.hexdigest()


def unpack_to_csv(packed: Path, out: Path, label: str, budget: Budget = UNLIMITED) -> str:
    """Writes the CSV inside `packed` (plain, gzip or zip, told by magic bytes) to `out`.

    Returns the sha256 of the CSV bytes written. At most `budget.max_bytes` are written.
    """
    with open(packed, "rb") as handle:
        head = handle.read(4096)
    if head.startswith(GZIP_MAGIC):
        try:
            with gzip.open(packed, "rb") as source, open(out, "wb") as target:
                digest = _copy_hashing(source, target, budget, label)
        except (OSError, EOFError, zlib.error) as error:
            raise PipelineError(f"{label}: corrupt gzip file ({printable(str(error))}); "
                                "download it again") from None
    elif head.startswith(ZIP_MAGIC):
        digest = _unzip(packed, out, label, budget)
    else:
        sniff_not_csv(Path(label), head)
        with open(packed, "rb") as source, open(out, "wb") as target:
            digest = _copy_hashing(source, target, budget, label)
    with open(out, "rb") as handle:
        sniff_not_csv(Path(label), handle.read(4096))
    return digest


def _unzip(packed: Path, out: Path, label: str, budget: Budget) -> str:
    try:
        with zipfile.ZipFile(packed) as archive:
            members = [m for m in archive.namelist() if m.lower().endswith(".csv")
                       and not m.startswith("__MACOSX")]
            if len(members) != 1:
                raise PipelineError(f"{label}: expected exactly one .csv inside the zip "
                                    f"(Kaggle's creditcard.zip holds creditcard.csv), "
                                    f"found {printable_names(members) or 'none'}")
            with archive.open(members[0]) as source, open(out, "wb") as target:
                return _copy_hashing(source, target, budget, label)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as error:
        raise PipelineError(f"{label}: corrupt zip file ({printable(str(error))}); download "
                            "it again") from None
    except (RuntimeError, NotImplementedError) as error:  # encrypted, unknown compression
        raise PipelineError(f"{label}: cannot unpack the zip ({printable(str(error))}); "
                            "expected Kaggle's creditcard.zip") from None


class SourceUnavailable(Exception):
    """The source could not be reached (network, missing file): the next one may work."""


def fetch_url(url: str, out: Path, timeout: float, retries: int,
              sleep: Callable[[float], None] = time.sleep, budget: Budget = UNLIMITED) -> None:
    """Streams `url` to `out`; retries network errors and 5xx, within `budget`'s deadline
    and size. Each read waits at most `timeout` (or what is left of the deadline)."""
    import requests
    import urllib3

    last_error: Exception | None = None
    for attempt in range(retries + 1):
        if attempt:
            wait = min(2 ** (attempt - 1), 30)
            log.warning("retrying %s in %s s (attempt %d of %d): %s", url, wait, attempt + 1,
                        retries + 1, last_error)
            budget.check_time(url, 0)
            sleep(min(wait, max(budget.remaining(), 0)))
        budget.check_time(url, 0)
        try:
            with requests.get(url, stream=True,
                              timeout=min(timeout, max(budget.remaining(), 0.01))) as response:
                if response.status_code >= 500:
                    last_error = PipelineError(f"{url}: HTTP {response.status_code} "
                                               f"{printable(response.reason)}")
                    continue
                if response.status_code >= 400:
                    raise PipelineError(f"{url}: HTTP {response.status_code} "
                                        f"{printable(response.reason)}; check download.url "
                                        f"({OFFLINE_HINT})")
                _stream_body(url, response, out, budget)
                return
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as error:
            last_error = error
    if isinstance(last_error, PipelineError):
        raise last_error
    raise SourceUnavailable(f"could not reach {url} after {retries + 1} attempt(s) "
                            f"({type(last_error).__name__}: {printable(str(last_error), 200)})")


def _stream_body(url: str, response: Any, out: Path, budget: Budget) -> None:
    """Writes the body to `out`, checking the deadline and the size after every read (one
    socket read at a time: a trickle of bytes cannot keep a read going past the deadline)."""
    from tqdm import tqdm

    total = int(response.headers.get("Content-Length") or 0) or None
    if total:
        budget.check_size(url, total, "is")
    got = 0
    with open(out, "wb") as target, tqdm(total=total, unit="B", unit_scale=True,
                                         desc="download", disable=None) as bar:
        while chunk := response.raw.read1(CHUNK, decode_content=True):
            got += len(chunk)
            budget.check_size(url, got, "is")
            target.write(chunk)
            bar.update(len(chunk))
            budget.check_time(url, got)
    if total and got < total and "Content-Encoding" not in response.headers:
        raise OSError(f"connection closed after {got:,} of {total:,} bytes")


@dataclass(frozen=True)
class DownloadResult:
    source: str
    sha256: str
    checked: bool


def download(params: DownloadParams, out: Path, seed: int, mirror: str | None = None,
             fetch: Callable[..., None] = fetch_url, scratch: Path | None = None
             ) -> DownloadResult:
    """Writes the raw CSV to `out` from the first source that can be reached.

    `seed` seeds the synthetic source only (the stage passes `download.synthetic_seed`).
    `scratch` holds the fetched file before unpacking (default: `out` + `.part`); it is
    deleted whatever happens. All sources together get `download.deadline` seconds.
    """
    if mirror and mirror.strip() == SYNTHETIC_SOURCE and params.url != SYNTHETIC_SOURCE:
        raise PipelineError(f"{MIRROR_ENV}={SYNTHETIC_SOURCE}: a mirror is a copy of the real "
                            f"data; for generated data set download.url: {SYNTHETIC_SOURCE}")
    budget = Budget.start(params)
    packed = scratch or out.with_name(out.name + ".part")
    failures: list[str] = []
    for source in sources_to_try(params.url, mirror):
        if source == SYNTHETIC_SOURCE:
            return _synthetic(params, out, seed)
        try:
            try:
                _fetch_source(source, packed, params, fetch, budget)
            except SourceUnavailable as error:
                failures.append(str(error))
                log.warning("%s", error)
                continue
            digest = unpack_to_csv(packed, out, source, budget)
            _check_sha256(source, digest, params.sha256)
        except BaseException:
            out.unlink(missing_ok=True)  # no partial or wrong CSV, whoever calls
            raise
        finally:
            packed.unlink(missing_ok=True)
        return DownloadResult(source=source, sha256=digest, checked=params.sha256 is not None)
    raise PipelineError("; ".join(failures) + f". {OFFLINE_HINT}")


def _fetch_source(source: str, packed: Path, params: DownloadParams,
                  fetch: Callable[..., None], budget: Budget) -> None:
    if is_url(source):
        fetch(source, packed, params.timeout, params.retries, budget=budget)
        return
    local = Path(source).expanduser()
    if not local.is_file():
        raise SourceUnavailable(f"{source}: no such file")
    budget.check_size(source, local.stat().st_size)
    shutil.copyfile(local, packed)


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


def mirror_from_env(environ: Iterable[tuple[str, str]] | None = None) -> str | None:
    env = dict(environ) if environ is not None else os.environ
    value = env.get(MIRROR_ENV)
    return value or None
