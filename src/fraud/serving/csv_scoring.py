"""Scoring raw transaction CSVs in chunks: the logic of `fraud predict`.

No TensorFlow here: the caller passes the scoring function, so a bad input file is reported
before (or without) the seconds TensorFlow takes to import, and the reader is testable alone.

Memory stays flat: the input is read `chunk_size` rows at a time through the same guarded
reader as clean (rawcsv.py: bounded lines, every row's field count), each chunk validated
with the checks `clean` applies (schema.py), scored, written, and dropped.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, TextIO

import numpy as np

from ..core.decision import Decision
from ..core.declaration import CREDIT_CARD_LAYOUT, Layout, category_text
from ..core.schema import (
    check_header,
    printable,
    printable_names,
    validate_raw_frame,
)
from ..data.rawcsv import STDIN_LABEL, STDIO, OpenedCsv, open_csv, read_frames
from ..errors import PipelineError

__all__ = ["STDIN_LABEL", "STDIO"]  # re-exported: predict's names for stdin/stdout
# The name of the exported model's preprocessing part (defined in schema.py, which the train
# stages depend on; predict imports it from here).
from ..core.schema import PREPROCESS_NAME  # noqa: F401


def optional_columns(layout: Layout) -> tuple[str, ...]:
    """Accepted in the input besides the model's: the time and the entities are ignored
    (not inputs of the model, their values are not checked); the label, if present, is
    checked as clean checks it (or blank for an unlabelled row) and copied to the output as
    0 / 1 so users can compare, never used for scoring."""
    return tuple(c for c in (layout.time, *layout.entities, layout.label) if c)


OUTPUT_COLUMNS = ["probability", "flagged"]
# Rows read at a time: memory grows with the chunk (the real file with the ONNX model:
# 20,000 rows 219 MB, 50,000 271 MB, 100,000 286 MB; a 10x file at 100,000: ~320 MB) and
# speed does not (1.5-1.6 s each); bench/NOTES.md.
DEFAULT_CHUNK_ROWS = 20_000
# pandas' default NA strings (read_csv's documentation): feature cells keep them, so "NaN"
# is reported as NaN, while key columns are copied verbatim (an ID "NA" stays "NA").
NA_STRINGS = ["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
              "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"]


ID_HINT = "to copy a key column to the output, pass --id-column NAME (repeatable)"


@dataclass
class OpenedInput:
    label: str              # what error messages call the input (its path, or <stdin>)
    csv: OpenedCsv          # the header read, the rows guarded (rawcsv.py)
    columns: list[str]      # the header's column names
    id_columns: list[str]   # key columns copied to the output, in the order asked
    close: Callable[[], None]
    layout: Layout          # the model's inputs, the label and time names (the card's data)

    @property
    def has_label(self) -> bool:
        return self.layout.label in self.columns


def open_input(source: str | Path, stdin: BinaryIO | None = None,
               id_columns: Sequence[str] = (), layout: Layout = CREDIT_CARD_LAYOUT
               ) -> OpenedInput:
    """Opens a CSV (plain or gzip, told by its magic bytes, not its name; `-` = stdin) and
    checks what can be checked before reading rows: not empty, not HTML, the header's
    columns. Key columns named by `id_columns` are allowed and copied to the output, and so
    are the declared ids (data.ids) that the header has, first."""
    opened = open_csv(source, stdin)
    try:
        declared = [c for c in layout.ids if c in opened.columns and c not in id_columns]
        id_columns = [*declared, *id_columns]
        check_id_columns(opened.label, opened.columns, id_columns, layout)
        check_header(Path(opened.label), [c for c in opened.columns if c not in id_columns],
                     layout.model_inputs, optional_columns(layout), extra_hint=ID_HINT)
    except BaseException:
        opened.close()
        raise
    return OpenedInput(label=opened.label, csv=opened, columns=opened.columns,
                       id_columns=list(id_columns), close=opened.close, layout=layout)


def check_id_columns(label: str, columns: list[str], id_columns: Sequence[str],
                     layout: Layout) -> None:
    """Key columns must be in the header, named once, and not be what predict reads."""
    for name in id_columns:
        if name in (*layout.model_inputs, layout.label):
            raise PipelineError(f"--id-column {printable(name)}: the model reads it, or it is "
                                "copied anyway; a key column is another one (an ID)")
        if list(id_columns).count(name) > 1:
            raise PipelineError(f"--id-column {printable(name)} is given twice")
        if columns.count(name) > 1:
            raise PipelineError(f"{label}: the header names {printable(name)} "
                                f"{columns.count(name)} times; a key column (--id-column) "
                                "must be named once")
        if name not in columns:
            raise PipelineError(f"{label}: no column {printable(name)} (from --id-column); "
                                f"the header has {printable_names(columns, 35)}")


def _file_identity(path: str | Path) -> tuple[int, int] | None:
    """(device, inode) of a path (followed through symlinks), or of stdin for `-`; None
    when there is no such file (or stdin is not one)."""
    try:
        found = os.fstat(sys.stdin.fileno()) if str(path) == STDIO else os.stat(path)
    except (OSError, ValueError, AttributeError):  # io.UnsupportedOperation is an OSError
        return None
    return found.st_dev, found.st_ino


def check_not_an_input(output: str | Path, inputs: dict[str, str | Path | None]) -> None:
    """An output file must not be one the command reads (`inputs`: what it is -> path):
    publishing renames the output over it, so `predict X.csv -o X.csv` would replace the
    transactions with their scores. Compared by file (device and inode: symlinks, hard
    links, `./X.csv.gz`, stdin redirected from it), or by resolved path when the output
    does not exist yet. Raised before anything is read or written."""
    if str(output) == STDIO:
        return
    target, where = _file_identity(output), os.path.realpath(output)
    for what, path in inputs.items():
        if path is None or (str(path) == STDIO and what != "input"):
            continue
        same = target is not None and _file_identity(path) == target
        if same or (str(path) != STDIO and os.path.realpath(path) == where):
            shown = "stdin" if str(path) == STDIO else str(path)
            raise PipelineError(f"{output}: is the same file as the {what} ({shown}), which "
                                "it would replace; write the output to another file")


@dataclass
class Chunk:
    first_line: int                 # file line of the first row (the header is line 1)
    features: np.ndarray            # (rows, inputs) float64, the model's input order; with
    #                                 categorical columns an object array, their text last
    numbers: np.ndarray             # (rows, numeric inputs) float64: the amount is the last
    labels: np.ndarray | None       # 0.0 / 1.0, NaN when blank (unlabelled); None: no label
    keys: list[np.ndarray]          # the key columns' cells as text, in --id-column order


def _read_options(opened: OpenedInput) -> dict[str, object]:
    """Only the columns predict uses are converted; keys and the label are read as text."""
    label, inputs = opened.layout.label, opened.layout.inputs
    categorical = list(opened.layout.categorical)
    text = [*opened.id_columns, *([label] if opened.has_label else [])]
    na_values: dict[str, list[str]] = dict.fromkeys(inputs, NA_STRINGS)
    if opened.has_label:
        na_values[label] = [""]
    # A categorical cell is text as written ("NA" is a level); only an empty one is missing.
    na_values.update(dict.fromkeys(categorical, [""]))
    return {"usecols": [*inputs, *categorical, *text],
            "dtype": dict.fromkeys([*text, *categorical], str),
            "keep_default_na": False, "na_values": na_values}


def read_chunks(opened: OpenedInput, chunk_size: int = DEFAULT_CHUNK_ROWS) -> Iterator[Chunk]:
    """Validated chunks of raw rows; errors name the input, the absolute line and column."""
    label, layout, has_label = Path(opened.label), opened.layout, opened.has_label
    checked = [*layout.inputs, *([layout.label] if has_label else [])]
    line = 2
    for frame in read_frames(opened.csv, chunk_size, **_read_options(opened)):
        if frame.empty:
            continue
        valid = validate_raw_frame(label, frame[checked].copy(), first_line=line,
                                   require_label=has_label, blank_labels=True, layout=layout)
        numbers = valid[layout.inputs].to_numpy(dtype=np.float64)
        features = numbers
        if layout.categorical:
            features = np.empty((len(frame), len(layout.model_inputs)), dtype=object)
            features[:, :len(layout.inputs)] = numbers
            for i, column in enumerate(layout.categorical):
                features[:, len(layout.inputs) + i] = category_text(frame[column].to_numpy())
        yield Chunk(first_line=line, features=features, numbers=numbers,
                    labels=(valid[layout.label].to_numpy(dtype=np.float64) if has_label
                            else None),
                    keys=[frame[name].to_numpy(dtype=object) for name in opened.id_columns])
        line += len(frame)
    if line == 2:
        raise PipelineError(f"{label}: has a header but no data rows")


def _csv_cells(values: np.ndarray) -> list[str]:
    """Text cells as CSV writes them: quoted when they hold a comma, a quote or a space at
    an end (so the key reads back exactly)."""
    return [f'"{v.replace(chr(34), chr(34) * 2)}"'
            if ("," in v or '"' in v or v != v.strip()) else v for v in values]


# Extra output columns for a chunk, given its rows' flags (predict --explain's reason codes).
ExtraColumns = Callable[[np.ndarray], list[np.ndarray]]


def format_rows(probabilities: np.ndarray, decision: Decision | float, features: np.ndarray,
                labels: np.ndarray | None, keys: Sequence[np.ndarray] = (),
                extra: ExtraColumns | None = None) -> tuple[str, int]:
    """CSV lines for one chunk and its count of flagged rows.

    `probability` is printed as float32 in its shortest round-trip form (what a network's
    own output is; enough digits for a reader); `flagged` is decided on the model's float64
    value by `decision` (a number: flag when probability >= it), so a calibrated float64
    probability just above a threshold is not rounded onto it. Key columns come first,
    copied; a blank label stays blank; `extra` columns come last.
    """
    decision = decision if isinstance(decision, Decision) else Decision(threshold=decision)
    exact = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    flagged = decision.flags(exact, features).astype(np.int8)
    columns: list[Sequence[str]] = [_csv_cells(column) for column in keys]
    columns += [exact.astype(np.float32).astype(str), flagged.astype(str)]
    if labels is not None:
        labels = np.asarray(labels, dtype=np.float64)
        columns.append(np.where(np.isnan(labels), "",
                                np.nan_to_num(labels).astype(np.int8).astype(str)))
    if extra is not None:
        columns += extra(flagged.astype(bool))
    text = "\n".join(map(",".join, zip(*columns, strict=True)))
    return (text + "\n" if len(exact) else ""), int(flagged.sum())


def header_line(label: str | None, id_columns: Sequence[str] = (),
                extra_names: Sequence[str] = ()) -> str:
    """The scores' header; `label` is the label column's name when the input has one."""
    names = [*id_columns, *OUTPUT_COLUMNS, *([label] if label else []), *extra_names]
    return ",".join(_csv_cells(np.array(names, dtype=object))) + "\n"


class Explain(Protocol):
    """Columns explaining the selected rows of raw features (explain.py ReasonColumns)."""
    @property
    def names(self) -> list[str]: ...

    def __call__(self, raw: np.ndarray, selected: np.ndarray) -> list[np.ndarray]: ...


@dataclass(frozen=True)
class ScoreSummary:
    rows: int
    flagged: int
    seconds: float
    decision: Decision

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")

    def line(self, source: str, target: str) -> str:
        share = 100.0 * self.flagged / self.rows if self.rows else 0.0
        return (f"{source}: {self.rows:,} rows scored, {self.flagged:,} flagged "
                f"({share:.3f} %) {self.decision.describe()}; {self.seconds:.2f} s, "
                f"{self.rows_per_second:,.0f} rows/s -> {target}")


def score(opened: OpenedInput, out: TextIO, predict: Callable[[np.ndarray], np.ndarray],
          decision: Decision | float, chunk_size: int = DEFAULT_CHUNK_ROWS,
          explain: Explain | None = None) -> ScoreSummary:
    """Reads, validates, scores and writes chunk by chunk: one output row per input row, in
    order. `predict` maps a (rows, inputs) float64 array to (rows,) probabilities; `decision`
    flags them (a number: the threshold); `explain`, if given, adds its columns for the rows
    it selects (explain.py ReasonColumns)."""
    decision = decision if isinstance(decision, Decision) else Decision(threshold=decision)
    start = time.perf_counter()
    rows = flagged = 0
    for chunk in read_chunks(opened, chunk_size):
        probabilities = np.asarray(predict(chunk.features)).reshape(-1)
        if len(probabilities) != len(chunk.features):
            raise RuntimeError(f"the model returned {len(probabilities)} probabilities for "
                               f"{len(chunk.features)} rows")
        if rows == 0:
            out.write(header_line(opened.layout.label if chunk.labels is not None else None,
                                  opened.id_columns,
                                  explain.names if explain else ()))
        extra = functools.partial(explain, chunk.features) if explain else None
        text, count = format_rows(probabilities, decision, chunk.numbers, chunk.labels,
                                  chunk.keys, extra)
        out.write(text)
        rows += len(chunk.features)
        flagged += count
    return ScoreSummary(rows=rows, flagged=flagged, seconds=time.perf_counter() - start,
                        decision=decision)
