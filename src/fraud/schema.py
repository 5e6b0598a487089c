"""The Credit Card Fraud data set's schema, and the checks every reader of raw rows shares.

`clean` and `predict` both call `validate_raw_frame`, so a malformed file gets the same
message wherever it is read.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import PipelineError, printable, printable_names

if TYPE_CHECKING:  # pandas costs ~0.5 s to import: only the readers of raw rows need it
    import pandas as pd

__all__ = ["printable", "printable_names"]  # re-exported: messages quote input with them

V_COLUMNS = [f"V{i}" for i in range(1, 29)]
RAW_COLUMNS = ["Time", *V_COLUMNS, "Amount", "Class"]
LABEL = "Class"
LOG_AMOUNT = "Log Amount"
# The model's 29 inputs, in this order everywhere (arrays, scaler, exported model).
FEATURES = [*V_COLUMNS, LOG_AMOUNT]
N_FEATURES = len(FEATURES)
# The cleaned and split tables: the model's inputs plus Time (for the time split and audits)
# and Amount (for amount-based costs), which `scale` drops.
TIME = "Time"
TABLE_COLUMNS = [TIME, *V_COLUMNS, "Amount", LOG_AMOUNT, LABEL]
# The exported detector's raw inputs, in this order (Time is not an input; Class is the
# label), and the name of its preprocessing part. Here, not beside the model code, so that
# reading inputs needs neither TensorFlow nor onnxruntime.
INPUT_COLUMNS = [*V_COLUMNS, "Amount"]
PREPROCESS_NAME = "preprocess"
# The first bytes of a gzip stream (what download and the CSV readers sniff for).
GZIP_MAGIC = b"\x1f\x8b"
# No time, amount or component of this data set comes near it (the largest are ~1.7e5 s,
# ~2.6e4 and ~1.2e2); beyond about 1e154 the squares in the scaler's variance overflow to
# inf, so a larger cell would pass clean and crash scale.
MAX_ABS_VALUE = 1e15


def sniff_not_csv(path: str | Path, head: bytes) -> None:
    """Rejects empty files and HTML error pages saved under a .csv name."""
    if not head.strip():
        raise PipelineError(f"{path}: the file is empty; expected the Credit Card Fraud CSV "
                            f"with header {','.join(RAW_COLUMNS[:3])},…,{LABEL}")
    lowered = head.lstrip().lower()
    if lowered.startswith((b"<!doctype", b"<html", b"<?xml", b"<head", b"<body")) \
            or b"<html" in lowered[:1024]:
        raise PipelineError(f"{path}: looks like an HTML page, not CSV (an error page saved "
                            "by a failed download?); delete it and download the data again")


def check_header(path: Path, columns: list[str], required: list[str],
                 optional: tuple[str, ...] = (), extra_hint: str = "") -> None:
    """Names missing, extra, renamed and duplicated columns, with what was expected.

    `extra_hint` is added when the header has unexpected columns (predict's --id-column).
    """
    seen: set[str] = set()
    duplicated = list(dict.fromkeys(
        c for c in columns if c in seen or seen.add(c)))  # type: ignore[func-returns-value]
    if duplicated:
        raise PipelineError(f"{path}: column(s) {printable_names(duplicated)} appear "
                            "more than once in the header")
    missing = [c for c in required if c not in columns]
    extra = [c for c in columns if c not in required and c not in optional]
    if not missing and not extra:
        return
    expected = f"expected the columns {', '.join(required)}"
    if optional:
        expected += f" (optionally {', '.join(optional)})"
    if len(missing) == 1 and len(extra) == 1:
        position = columns.index(extra[0]) + 1
        raise PipelineError(f"{path}: column {position} is named {printable(extra[0])}, "
                            f"expected {missing[0]!r} (renamed column?); {expected}"
                            + (f"; {extra_hint}" if extra_hint else ""))
    parts = []
    if missing:
        parts.append(f"missing column(s) {printable_names(missing)}")
    if extra:
        parts.append(f"unexpected column(s) {printable_names(extra)}")
    hint = f"; {extra_hint}" if extra and extra_hint else ""
    raise PipelineError(f"{path}: {'; '.join(parts)}; {expected}{hint}")


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
                       require_label: bool = True, blank_labels: bool = False) -> pd.DataFrame:
    """Checks types and values of raw rows; returns the frame with float64 features.

    `first_line` is the file line of the frame's first row (2 after the header), so errors
    point at the line a user can open in an editor. Without `require_label`, Class is not
    checked (nor needed); with `blank_labels` (scoring) a blank Class is an unlabelled row
    and stays NaN, any other value must still be 0 or 1.
    """
    import pandas as pd

    checked = [c for c in frame.columns if c != LABEL or require_label]
    for column in checked:
        series = frame[column]
        if not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
            converted = pd.to_numeric(series, errors="coerce")
            bad = (converted.isna() & series.notna()).to_numpy()
            if bad.any():
                raise _first_bad_cell(path, frame[[column]], bad[:, None], first_line,
                                      "not a number")
            frame[column] = converted
    numeric = [c for c in checked if c != LABEL or not blank_labels]
    values = frame[numeric].to_numpy(dtype=np.float64)
    finite = np.isfinite(values)
    if not finite.all():
        raise _first_bad_cell(path, frame[numeric], ~finite, first_line,
                              "missing, NaN or infinite; every cell must be a finite number")
    huge = np.abs(values) > MAX_ABS_VALUE
    if huge.any():
        raise _first_bad_cell(path, frame[numeric], huge, first_line,
                              f"out of range; every cell must be within ±{MAX_ABS_VALUE:g}")
    if "Amount" in frame.columns:
        negative = (frame["Amount"].to_numpy() < 0)[:, None]
        if negative.any():
            raise _first_bad_cell(path, frame[["Amount"]], negative, first_line,
                                  "negative; Amount must be >= 0")
    if require_label:
        label = frame[LABEL].to_numpy(dtype=np.float64)
        unlabelled = np.isnan(label) if blank_labels else np.zeros(len(label), dtype=bool)
        bad_label = (~np.isin(label, (0, 1)) & ~unlabelled)[:, None]
        if bad_label.any():
            raise _first_bad_cell(path, frame[[LABEL]], bad_label, first_line,
                                  "not a valid label; Class must be 0 (normal) or 1 (fraud)"
                                  + (" or blank (unlabelled)" if blank_labels else ""))
        if not blank_labels:
            frame[LABEL] = label.astype(np.int8)
    return frame
