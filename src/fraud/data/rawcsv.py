"""Reading a raw transactions CSV without trusting it: the one reader of clean and predict.

Every byte pandas parses has first passed `LineGuard`, which keeps memory and time bounded
whatever the file holds. pandas alone tokenises a 50 MB line whole, turns a first row with
extra fields into one index level per field (12 GB and still running), and with
`index_col=False` silently drops the extra fields of a long first row. The guard instead:

- refuses a line longer than MAX_LINE_BYTES as soon as it has read that much of it;
- counts the fields of every line (quotes respected) against the header's;
- accepts blank lines only at the end of the file (an editor's trailing newline), and
  refuses one between rows, so row i of the data is always file line i + 2;
- requires UTF-8 without NUL bytes, and naming the line of the first bad byte.

It also hashes every byte it reads, so clean checks the raw file against `download.sha256`
in the same single pass. Inputs may be gzip (told by their bytes) and come from stdin.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import hashlib
import io
import sys
import warnings
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd

from ..core.schema import GZIP_MAGIC, printable, sniff_not_csv
from ..errors import PipelineError

# A row of this data set is under 1 KB; 64 KiB leaves room for long ID columns (predict)
# while a runaway line is refused after reading 64 KiB of it.
MAX_LINE_BYTES = 1 << 16
BLOCK_BYTES = 1 << 20
ZIP_MAGIC = b"PK\x03\x04"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
STDIO = "-"
STDIN_LABEL = "<stdin>"
_NEWLINE, _COMMA, _QUOTE = ord("\n"), ord(","), ord('"')
_BLANK_BYTES = np.array([ord(" "), ord("\t"), ord("\r")], dtype=np.uint8)
_READ_ERRORS = (OSError, EOFError, zlib.error)


class _Replay(io.RawIOBase):
    """A read-once stream with its first bytes (already read to sniff it) put back in front."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        super().__init__()
        self._head = memoryview(head)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if len(self._head):
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


def _read_head(stream: BinaryIO, size: int) -> bytes:
    parts, got = [], 0
    while got < size:
        block = stream.read(size - got)
        if not block:
            break
        parts.append(block)
        got += len(block)
    return b"".join(parts)


def _not_utf8(label: str, error: UnicodeDecodeError, data: bytes, first_line: int) -> PipelineError:
    line = first_line + data.count(b"\n", 0, error.start)
    column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
    byte = data[error.start:error.start + 1]
    return PipelineError(f"{label}: line {line}, byte {column}: not UTF-8 text (byte "
                         f"0x{byte.hex()}); save the file as UTF-8")


class LineGuard(io.RawIOBase):
    """The data lines of a CSV (after its header), passed through only once checked.

    Reads BLOCK_BYTES at a time and hands on whole lines; memory holds at most one block
    and one unfinished line (< MAX_LINE_BYTES). Blank lines are held back: dropped at the
    end of the file, an error when a row follows them.
    """

    def __init__(self, source: BinaryIO, label: str, fields: int, carry: bytes = b"",
                 digest: Any = None, first_line: int = 2, compressed: bool = False) -> None:
        super().__init__()
        self._source, self._label, self._fields = source, label, fields
        self._carry, self._line = carry, first_line
        self._digest = digest  # None: no hashing (it costs ~0.2 s per 150 MB)
        self._compressed = compressed
        self._ready = memoryview(b"")
        self._first_blank: int | None = None  # first held-back blank line
        self.finished = False

    def readable(self) -> bool:
        return True

    def hexdigest(self) -> str:
        """sha256 of every byte read so far (header included): the file's, once finished."""
        if self._digest is None:
            raise RuntimeError("opened without hashing")
        return self._digest.hexdigest()

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not len(self._ready) and not self.finished:
            self._ready = memoryview(self._next_lines())
        n = min(len(buffer), len(self._ready))
        buffer[:n] = self._ready[:n]
        self._ready = self._ready[n:]
        return n

    def _read_block(self) -> bytes:
        try:
            return self._source.read(BLOCK_BYTES)
        except _READ_ERRORS as error:
            what = "corrupt or truncated gzip file" if self._compressed else "cannot read"
            raise PipelineError(f"{self._label}: {what} near line {self._line} "
                                f"({printable(str(error))})") from None

    def _next_lines(self) -> bytes:
        """The next checked whole lines (b"" when a block held only blank lines)."""
        block = self._read_block()
        if self._digest is not None:
            self._digest.update(block)
        data = self._carry + block
        if not block:  # the end: the last line may lack its newline
            self.finished = True
            self._carry = b""
            return self._check(data + b"\n") if data else b""
        end = data.rfind(b"\n") + 1
        self._carry = data[end:]
        if len(self._carry) > MAX_LINE_BYTES:
            self._too_long(self._line + data.count(b"\n", 0, end))
        return self._check(data[:end]) if end else b""

    def _too_long(self, line: int) -> None:
        raise PipelineError(f"{self._label}: line {line} is longer than {MAX_LINE_BYTES:,} "
                            f"bytes; a row of {self._fields} fields is far shorter (is this "
                            "the transactions CSV?)")

    def _check(self, lines: bytes) -> bytes:
        """Checks whole lines (ending in \\n); returns those to pass on."""
        if not lines.strip(b" \t\r\n"):  # blank lines only: no need to look closer
            if self._first_blank is None:
                self._first_blank = self._line
            self._line += lines.count(b"\n")
            return b""
        if b"\0" in lines:
            line = self._line + lines.count(b"\n", 0, lines.index(b"\0"))
            raise PipelineError(f"{self._label}: line {line} holds a NUL byte (binary data?); "
                                "expected CSV text")
        try:
            lines.decode("utf-8")
        except UnicodeDecodeError as error:
            raise _not_utf8(self._label, error, lines, self._line) from None
        arr = np.frombuffer(lines, dtype=np.uint8)
        ends = np.flatnonzero(arr == _NEWLINE)
        starts = np.concatenate(([0], ends[:-1] + 1))
        too_long = np.flatnonzero(ends - starts > MAX_LINE_BYTES)
        if too_long.size:
            self._too_long(self._line + int(too_long[0]))
        commas = _per_line(arr == _COMMA, starts)
        quotes = _per_line(arr == _QUOTE, starts)
        suspect = (commas != self._fields - 1) | (quotes % 2 == 1)
        blank = np.zeros(len(ends), dtype=bool)
        if suspect.any():
            blank = _per_line(~np.isin(arr, _BLANK_BYTES) & (arr != _NEWLINE), starts) == 0
            for index in np.flatnonzero(suspect & ~blank):
                self._check_fields(lines[starts[index]:ends[index]], self._line + int(index))
        keep = self._blank_lines(blank)
        self._line += len(ends)
        return lines[:ends[keep - 1] + 1] if keep else b""

    def _check_fields(self, line: bytes, number: int) -> None:
        """The exact count, for a line whose commas and quotes did not add up."""
        text = line.decode("utf-8").rstrip("\r")
        if text.count('"') % 2:
            raise PipelineError(f"{self._label}: malformed CSV: line {number} has an "
                                "unmatched quote (\"); a quoted field cannot span lines")
        try:
            found = len(next(csv.reader([text])))
        except csv.Error as error:
            raise PipelineError(f"{self._label}: malformed CSV: line {number}: {error}") \
                from None
        if found != self._fields:
            raise PipelineError(f"{self._label}: malformed CSV: line {number} has {found:,} "
                                f"field(s), the header {self._fields}; every row must have "
                                f"{self._fields} fields")

    def _blank_lines(self, blank: np.ndarray) -> int:
        """How many of these lines to pass on; raises for a blank line followed by a row."""
        rows = np.flatnonzero(~blank)
        if not rows.size:
            if blank.size and self._first_blank is None:
                self._first_blank = self._line
            return 0
        if self._first_blank is None and blank[:rows[-1]].any():
            self._first_blank = self._line + int(np.argmax(blank))
        if self._first_blank is not None:
            raise PipelineError(f"{self._label}: line {self._first_blank} is blank; blank "
                                "lines are allowed only at the end of the file")
        if rows[-1] + 1 < blank.size:
            self._first_blank = self._line + int(rows[-1]) + 1
        return int(rows[-1]) + 1


def _per_line(mask: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """How many bytes of each line (lines start at `starts`) `mask` marks."""
    return np.add.reduceat(mask, starts, dtype=np.int64)


@dataclass
class OpenedCsv:
    label: str                  # what messages call the input: its path, or <stdin>
    columns: list[str]          # the header's names, stripped (a BOM removed)
    rows: LineGuard             # the data lines, checked as they are read
    close: Callable[[], None]

    def stream(self) -> BinaryIO:
        return io.BufferedReader(self.rows, BLOCK_BYTES)


def open_csv(source: str | Path, stdin: BinaryIO | None = None, missing_hint: str = "",
             hashing: bool = False) -> OpenedCsv:
    """Opens a CSV (plain or gzip, told by its bytes; `-` is stdin) and reads its header.

    Refuses what can be told from the first line: no file, empty, HTML, not UTF-8, a header
    longer than MAX_LINE_BYTES, lone-CR line ends. With `hashing`, `rows.hexdigest()` is
    the sha256 of the (decompressed) bytes once they are read.
    """
    if str(source) == STDIO:
        label, raw, owned = STDIN_LABEL, stdin if stdin is not None else sys.stdin.buffer, None
    else:
        label = str(source)
        # Not is_file(): a pipe (`<(zcat day.csv.gz)`, a FIFO) is a fine input, read once.
        if not Path(source).exists():
            raise PipelineError(f"{label}: file not found{missing_hint}")
        if Path(source).is_dir():
            raise PipelineError(f"{label}: is a folder; expected a CSV file")
        try:
            owned = raw = open(source, "rb")  # noqa: SIM115 (closed by `close`, with the input)
        except OSError as error:
            raise PipelineError(f"{label}: cannot be read ({error.strerror or error})") from None
    closers: list[Callable[[], None]] = [owned.close] if owned is not None else []

    def close() -> None:
        for closer in reversed(closers):
            closer()

    try:
        stream, head, compressed = _decompressed(label, raw, closers)
        columns, carry = _header(label, head)
    except BaseException:
        close()
        raise
    digest = hashlib.sha256(head) if hashing else None
    guard = LineGuard(stream, label, len(columns), carry=carry, digest=digest,
                      compressed=compressed)
    return OpenedCsv(label=label, columns=columns, rows=guard, close=close)


def _decompressed(label: str, raw: BinaryIO, closers: list[Callable[[], None]]
                  ) -> tuple[BinaryIO, bytes, bool]:
    """The stream of CSV bytes after its first MAX_LINE_BYTES + 1 (returned as `head`)."""
    head = _read_head(raw, MAX_LINE_BYTES + 1)
    if not head.startswith(GZIP_MAGIC):
        return raw, head, False
    unpacked = gzip.GzipFile(fileobj=io.BufferedReader(_Replay(head, raw)), mode="rb")
    closers.append(unpacked.close)
    try:
        return unpacked, _read_head(unpacked, MAX_LINE_BYTES + 1), True
    except _READ_ERRORS as error:
        raise PipelineError(f"{label}: corrupt gzip file ({printable(str(error))})") from None


def _header(label: str, head: bytes) -> tuple[list[str], bytes]:
    """The header's column names, and the bytes after it."""
    if not head.strip() and len(head) > MAX_LINE_BYTES:
        raise PipelineError(f"{label}: starts with over {MAX_LINE_BYTES:,} bytes of blank "
                            "lines; the header must be the first line")
    sniff_not_csv(Path(label), head[:4096])
    if head.startswith(ZIP_MAGIC):
        raise PipelineError(f"{label}: a zip archive, not CSV; unpack it first (the download "
                            "stage unpacks Kaggle's creditcard.zip)")
    if head.startswith(UTF16_BOMS):
        raise PipelineError(f"{label}: UTF-16 text; save the file as UTF-8")
    end = head.find(b"\n")
    if end < 0 and b"\r" in head.rstrip(b"\r"):
        raise PipelineError(f"{label}: lines end with a lone CR (classic Mac OS); save the "
                            "file with LF or CRLF line ends")
    if end < 0 and len(head) > MAX_LINE_BYTES:
        raise PipelineError(f"{label}: line 1 (the header) is longer than "
                            f"{MAX_LINE_BYTES:,} bytes; expected a CSV header of ~30 names")
    first, carry = (head, b"") if end < 0 else (head[:end + 1], head[end + 1:])
    try:
        text = first.decode("utf-8-sig")  # a BOM: Excel's "CSV UTF-8"
    except UnicodeDecodeError as error:
        raise _not_utf8(label, error, first, 1) from None
    text = text.rstrip("\n").rstrip("\r")
    if "\r" in text:
        raise PipelineError(f"{label}: lines end with a lone CR (classic Mac OS); save the "
                            "file with LF or CRLF line ends")
    if "\0" in text:
        raise PipelineError(f"{label}: line 1 holds a NUL byte (binary data?); expected a "
                            "CSV header")
    if not text.strip():
        raise PipelineError(f"{label}: line 1 is blank; the header must be the first line")
    try:
        columns = [name.strip() for name in next(csv.reader([text]))]
    except csv.Error as error:
        raise PipelineError(f"{label}: malformed CSV header: {error}") from None
    for separator, name in ((";", "';'"), ("\t", "tabs")):
        if len(columns) == 1 and separator in text:
            raise PipelineError(f"{label}: fields are separated by {name}; expected commas "
                                "(save as CSV with ',' as the separator)")
    return columns, carry


def read_frames(opened: OpenedCsv, chunk_rows: int | None = None,
                **options: Any) -> Iterator[pd.DataFrame]:
    """The data rows as DataFrames (one, or `chunk_rows` rows at a time), named by the header.

    pandas parses only what the guard passed; `options` go to `pd.read_csv` (dtype, usecols,
    na_values ...). A non-numeric cell under a float dtype raises ValueError (the caller
    rereads as text to say where); every other failure is a PipelineError.
    """
    settings = {"names": opened.columns, "header": None, "index_col": False, "engine": "c",
                "skip_blank_lines": False, "encoding": "utf-8", **options}
    try:
        with _parse_warnings():
            if chunk_rows is None:
                frame = pd.read_csv(opened.stream(), **settings)
                reader = None
            else:
                reader = pd.read_csv(opened.stream(), chunksize=chunk_rows, **settings)
        if reader is None:
            yield frame
            return
        with reader:
            while True:
                with _parse_warnings():
                    frame = next(reader, None)
                if frame is None:
                    return
                yield frame
    except pd.errors.EmptyDataError:
        raise PipelineError(f"{opened.label}: has a header but no data rows") from None
    except (pd.errors.ParserError, pd.errors.ParserWarning) as error:  # before ValueError
        raise PipelineError(f"{opened.label}: malformed CSV: "
                            f"{printable(str(error).strip(), 200)}") from None


@contextlib.contextmanager
def _parse_warnings() -> Iterator[None]:
    """Mixed types (a bad cell) are reported by validation; a ParserWarning is an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pd.errors.DtypeWarning)
        warnings.simplefilter("error", pd.errors.ParserWarning)
        yield
