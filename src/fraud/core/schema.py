"""The checks every reader of raw rows shares, for the columns the data declaration names.

`clean` and `predict` both call `validate_raw_frame`, so a malformed file gets the same
message wherever it is read. Which column is what: declaration.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import PipelineError, printable, printable_names
from .declaration import CREDIT_CARD_LAYOUT, Layout, check_header

if TYPE_CHECKING:  # pandas costs ~0.5 s to import: only the readers of raw rows need it
    import pandas as pd

# Re-exported: readers of raw rows check headers and quote input with them.
__all__ = ["check_header", "printable", "printable_names"]

# The name of the detectors' preprocessing part (ONNX node prefix, Keras sub-model). Here, not
# beside the model code, so that reading inputs needs neither TensorFlow nor onnxruntime.
PREPROCESS_NAME = "preprocess"
# The first bytes of a gzip stream (what download and the CSV readers sniff for).
GZIP_MAGIC = b"\x1f\x8b"
# No time, amount or component of the Credit Card Fraud data comes near it (the largest are
# ~1.7e5 s, ~2.6e4 and ~1.2e2); beyond about 1e154 the squares in the scaler's variance overflow to
# inf, so a larger cell would pass clean and crash scale.
MAX_ABS_VALUE = 1e15


def sniff_not_csv(path: str | Path, head: bytes) -> None:
    """Rejects empty files and HTML error pages saved under a .csv name."""
    if not head.strip():
        raise PipelineError(f"{path}: the file is empty; expected a CSV table whose first "
                            "line names its columns")
    lowered = head.lstrip().lower()
    if lowered.startswith((b"<!doctype", b"<html", b"<?xml", b"<head", b"<body")) \
            or b"<html" in lowered[:1024]:
        raise PipelineError(f"{path}: looks like an HTML page, not CSV (an error page saved "
                            "by a failed download?); delete it and download the data again")


def _first_bad_cell(path: Path, frame: pd.DataFrame, mask: np.ndarray, first_line: int,
                    what: str) -> PipelineError:
    row, col = np.argwhere(mask)[0]
    column = frame.columns[col]
    line = first_line + int(row)
    count = int(mask.sum())
    more = f" ({count - 1} more such cells)" if count > 1 else ""
    return PipelineError(f"{path}: line {line}, column {printable(column)}: "
                         f"{printable(frame.iat[row, col])} is {what}{more}")


def validate_raw_frame(path: Path, frame: pd.DataFrame, first_line: int = 2,
                       require_label: bool = True, blank_labels: bool = False,
                       layout: Layout = CREDIT_CARD_LAYOUT) -> pd.DataFrame:
    """Checks types and values of raw rows; returns the frame with float64 inputs and the
    label as 0 (normal) / 1 (fraud).

    The inputs (and a time in seconds) must be finite numbers, the amount >= 0, the label one
    of the declared values. Key columns (ids, entities) are not checked. `first_line` is the
    file line of the frame's first row (2 after the header), so errors point at the line a
    user can open in an editor. Without `require_label`, the label is not checked (nor
    needed); with `blank_labels` (scoring) a blank label is an unlabelled row and stays NaN.
    """
    import pandas as pd

    seconds = layout.time if layout.time in frame.columns and _time_in_seconds(
        frame[layout.time], layout.time_format) else None
    numeric = [c for c in frame.columns if c in layout.inputs or c == seconds]
    numeric_label = not isinstance(layout.positive, str) and not isinstance(layout.negative, str)
    converted_columns = [*numeric, *([layout.label] if require_label and numeric_label else [])]
    for column in converted_columns:
        series = frame[column]
        if not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
            converted = pd.to_numeric(series, errors="coerce")
            bad = (converted.isna() & series.notna()).to_numpy()
            if bad.any():
                raise _first_bad_cell(path, frame[[column]], bad[:, None], first_line,
                                      "not a number")
            frame[column] = converted
    if numeric:
        values = frame[numeric].to_numpy(dtype=np.float64)
        finite = np.isfinite(values)
        if not finite.all():
            raise _first_bad_cell(path, frame[numeric], ~finite, first_line,
                                  "missing, NaN or infinite; every cell must be a finite number")
        huge = np.abs(values) > MAX_ABS_VALUE
        if huge.any():
            raise _first_bad_cell(path, frame[numeric], huge, first_line,
                                  f"out of range; every cell must be within ±{MAX_ABS_VALUE:g}")
    if layout.amount is not None and layout.amount in frame.columns:
        negative = (frame[layout.amount].to_numpy() < 0)[:, None]
        if negative.any():
            raise _first_bad_cell(path, frame[[layout.amount]], negative, first_line,
                                  f"negative; {layout.amount} must be >= 0")
    if layout.time in frame.columns and seconds is None:
        frame[layout.time] = _iso_seconds(path, frame, layout.time, first_line)
    if require_label:
        frame[layout.label] = _labels(path, frame, layout, first_line, blank_labels, numeric_label)
    return frame


def _time_in_seconds(series: pd.Series, time_format: str) -> bool:
    """Whether a time column holds seconds (numbers) rather than ISO 8601 text."""
    import pandas as pd

    if time_format != "auto":
        return time_format == "seconds"
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        return True
    return bool(pd.to_numeric(series, errors="coerce").notna().all())


def _iso_seconds(path: Path, frame: pd.DataFrame, column: str, first_line: int) -> np.ndarray:
    """ISO 8601 text → seconds since 1970-01-01 UTC (float64); a time without an offset is UTC."""
    import pandas as pd

    text = frame[column].astype("string")
    parsed = pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")
    bad = parsed.isna().to_numpy()
    if bad.any():
        raise _first_bad_cell(path, frame[[column]], bad[:, None], first_line,
                              "not a time: expected ISO 8601 (2024-01-31T23:59:59, with or "
                              "without an offset) or seconds (data.time_format)")
    stamps = parsed.to_numpy(dtype="datetime64[ns]").astype(np.int64)
    return stamps.astype(np.float64) / 1e9


def _labels(path: Path, frame: pd.DataFrame, layout: Layout, first_line: int,
            blank_labels: bool, numeric: bool) -> np.ndarray:
    """The label column as 1 (data.positive) / 0 (data.negative): int8, or float64 with NaN
    for blank cells when `blank_labels` (scoring unlabelled rows)."""
    column = frame[layout.label]
    if numeric:
        values = column.to_numpy(dtype=np.float64)
        unlabelled = np.isnan(values) if blank_labels else np.zeros(len(values), dtype=bool)
        positive = values == float(layout.positive)
        negative = values == float(layout.negative)
    else:
        text = column.astype("string").str.strip()
        unlabelled = (text.isna() | (text == "")).to_numpy(dtype=bool) if blank_labels \
            else np.zeros(len(text), dtype=bool)
        text = text.fillna("")
        positive = (text == str(layout.positive)).to_numpy(dtype=bool)
        negative = (text == str(layout.negative)).to_numpy(dtype=bool)
    bad = (~positive & ~negative & ~unlabelled)[:, None]
    if bad.any():
        row = int(np.argmax(bad[:, 0]))
        missing = column.isna().iat[row] or not str(column.iat[row]).strip()
        raise _first_bad_cell(path, frame[[layout.label]], bad, first_line,
                              ("missing" if missing else "not a valid label")
                              + f"; {layout.label_rule()}"
                              + (" or blank (unlabelled)" if blank_labels else ""))
    if blank_labels:
        return np.where(unlabelled, np.nan, positive.astype(np.float64))
    return positive.astype(np.int8)
