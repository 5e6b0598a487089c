"""Scoring raw transaction CSVs in chunks: the logic of `python -m src.predict`.

No TensorFlow here: the caller passes the scoring function, so a bad input file is reported
before (or without) the seconds TensorFlow takes to import, and the reader is testable alone.

Memory stays flat: the input is read `chunk_size` rows at a time (pandas' C parser), each
chunk validated with the checks `clean` applies (schema.py), scored, written, and dropped.
"""

from __future__ import annotations

import csv
import gzip
import io
import sys
import time
import warnings
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TextIO

import numpy as np
import pandas as pd

from .errors import PipelineError
from .schema import LABEL, check_header, sniff_not_csv, validate_raw_frame
# The exported model's input columns, in order, and the name of its preprocessing part
# (defined in schema.py, which the train stages depend on; predict imports them from here).
from .schema import INPUT_COLUMNS, PREPROCESS_NAME  # noqa: F401

TIME = "Time"
# Accepted in the input: Time is ignored (not an input of the model, its values are not
# checked); Class, if present, is checked like clean checks it (0 or 1) and copied to the
# output so users can compare, never used for scoring.
OPTIONAL_COLUMNS = (TIME, LABEL)
OUTPUT_COLUMNS = ["probability", "flagged"]
STDIO = "-"
STDIN_LABEL = "<stdin>"
HEAD_BYTES = 1 << 16
GZIP_MAGIC = b"\x1f\x8b"
DEFAULT_CHUNK_ROWS = 100_000


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


@dataclass
class OpenedInput:
    label: str              # what error messages call the input (its path, or <stdin>)
    stream: BinaryIO        # the decompressed bytes, from the first one
    head: bytes             # the first bytes of `stream` (already put back)
    columns: list[str]      # the header's column names
    close: Callable[[], None]


def open_input(source: str | Path, stdin: BinaryIO | None = None) -> OpenedInput:
    """Opens a CSV (plain or gzip, told by its magic bytes, not its name; `-` = stdin) and
    checks what can be checked before reading rows: not empty, not HTML, the header's
    columns, and the first row's field count."""
    if str(source) == STDIO:
        label = STDIN_LABEL
        raw: BinaryIO = stdin if stdin is not None else sys.stdin.buffer
        owned = None
    else:
        path = Path(source)
        label = str(source)
        if not path.is_file():
            raise PipelineError(f"{label}: file not found")
        owned = raw = open(path, "rb")
    closers = [owned.close] if owned is not None else []

    def close() -> None:
        for closer in reversed(closers):
            closer()

    try:
        head = _read_head(raw, HEAD_BYTES)
        stream: BinaryIO = io.BufferedReader(_Replay(head, raw), 1 << 20)
        if head.startswith(GZIP_MAGIC):
            unpacked = gzip.GzipFile(fileobj=stream, mode="rb")
            closers.append(unpacked.close)
            try:
                head = _read_head(unpacked, HEAD_BYTES)
            except (OSError, EOFError, zlib.error) as error:
                raise PipelineError(f"{label}: corrupt gzip file ({error})") from None
            stream = io.BufferedReader(_Replay(head, unpacked), 1 << 20)
        sniff_not_csv(Path(label), head)
        lines = head.decode("utf-8-sig", errors="replace").splitlines()
        header = [name.strip() for name in next(csv.reader(lines[:1]))]
        check_header(Path(label), header, INPUT_COLUMNS, OPTIONAL_COLUMNS)
        if len(lines) > 1 and lines[1].strip() and (len(lines) > 2 or head.endswith(b"\n")):
            fields = len(next(csv.reader(lines[1:2])))
            if fields > len(header):  # pandas would take the extra field as an index column
                raise PipelineError(f"{label}: malformed CSV: line 2 has {fields} fields, the "
                                    f"header {len(header)}; every row must have "
                                    f"{len(header)} fields")
    except BaseException:
        close()
        raise
    return OpenedInput(label=label, stream=stream, head=head, columns=header, close=close)


@dataclass
class Chunk:
    first_line: int                 # file line of the first row (the header is line 1)
    features: np.ndarray            # (rows, 29) float64, INPUT_COLUMNS order
    labels: np.ndarray | None       # int8 0/1 when the input has Class


def read_chunks(opened: OpenedInput, chunk_size: int = DEFAULT_CHUNK_ROWS) -> Iterator[Chunk]:
    """Validated chunks of raw rows; errors name the input, the absolute line and column."""
    label = Path(opened.label)
    has_label = LABEL in opened.columns
    keep = INPUT_COLUMNS + ([LABEL] if has_label else [])
    line = 2
    try:
        with warnings.catch_warnings():
            # Mixed types in one column (a bad cell) are reported by validate_raw_frame.
            warnings.simplefilter("ignore", pd.errors.DtypeWarning)
            reader = pd.read_csv(opened.stream, chunksize=chunk_size, engine="c",
                                 skip_blank_lines=False, index_col=False, encoding="utf-8-sig")
            with reader:
                for frame in reader:
                    if frame.empty:
                        continue
                    frame.columns = [str(c).strip() for c in frame.columns]
                    frame = validate_raw_frame(label, frame[keep].copy(), first_line=line,
                                               require_label=has_label)
                    yield Chunk(first_line=line,
                                features=frame[INPUT_COLUMNS].to_numpy(dtype=np.float64),
                                labels=frame[LABEL].to_numpy() if has_label else None)
                    line += len(frame)
    except pd.errors.ParserError as error:  # a ValueError too: must be caught first
        raise PipelineError(f"{label}: malformed CSV: {str(error).strip()}; every row must "
                            f"have {len(opened.columns)} fields") from None
    except pd.errors.EmptyDataError:
        raise PipelineError(f"{label}: the file is empty") from None
    except UnicodeDecodeError as error:
        raise PipelineError(f"{label}: not UTF-8 text near line {line} or later ({error})") \
            from None
    except (EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise PipelineError(f"{label}: corrupt or truncated gzip file ({error})") from None
    if line == 2:
        raise PipelineError(f"{label}: has a header but no data rows")


def format_rows(probabilities: np.ndarray, threshold: float,
                labels: np.ndarray | None) -> tuple[str, int]:
    """CSV lines for one chunk and its count of flagged rows.

    `probability` is the model's float32 value in its shortest round-trip form; `flagged` is
    decided on that exact value (probability >= threshold, as evaluate counts).
    """
    probabilities = np.asarray(probabilities, dtype=np.float32).reshape(-1)
    flagged = (probabilities.astype(np.float64) >= threshold).astype(np.int8)
    columns = [probabilities.astype(str), flagged.astype(str)]
    if labels is not None:
        columns.append(np.asarray(labels).astype(np.int8).astype(str))
    text = "\n".join(map(",".join, zip(*columns)))
    return (text + "\n" if len(probabilities) else ""), int(flagged.sum())


def header_line(has_label: bool) -> str:
    return ",".join(OUTPUT_COLUMNS + ([LABEL] if has_label else [])) + "\n"


@dataclass(frozen=True)
class ScoreSummary:
    rows: int
    flagged: int
    seconds: float
    threshold: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")

    def line(self, source: str, target: str) -> str:
        share = 100.0 * self.flagged / self.rows if self.rows else 0.0
        return (f"{source}: {self.rows:,} rows scored, {self.flagged:,} flagged "
                f"({share:.3f} %) at threshold {self.threshold:g}; {self.seconds:.2f} s, "
                f"{self.rows_per_second:,.0f} rows/s -> {target}")


def score(opened: OpenedInput, out: TextIO, predict: Callable[[np.ndarray], np.ndarray],
          threshold: float, chunk_size: int = DEFAULT_CHUNK_ROWS) -> ScoreSummary:
    """Reads, validates, scores and writes chunk by chunk: one output row per input row, in
    order. `predict` maps a (rows, 29) float64 array to (rows,) probabilities."""
    start = time.perf_counter()
    rows = flagged = 0
    for chunk in read_chunks(opened, chunk_size):
        probabilities = np.asarray(predict(chunk.features)).reshape(-1)
        if len(probabilities) != len(chunk.features):
            raise RuntimeError(f"the model returned {len(probabilities)} probabilities for "
                               f"{len(chunk.features)} rows")
        if rows == 0:
            out.write(header_line(chunk.labels is not None))
        text, count = format_rows(probabilities, threshold, chunk.labels)
        out.write(text)
        rows += len(chunk.features)
        flagged += count
    return ScoreSummary(rows=rows, flagged=flagged, seconds=time.perf_counter() - start,
                        threshold=threshold)
