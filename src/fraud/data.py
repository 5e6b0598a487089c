"""The data stages' logic: read and validate the raw CSV, clean, split, scale.

No TensorFlow here: these stages must start fast.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from .errors import PipelineError
from .schema import FEATURES, LABEL, LOG_AMOUNT, RAW_COLUMNS, check_header, sniff_not_csv, \
    validate_raw_frame


def read_raw_csv(path: str | Path) -> pd.DataFrame:
    """Reads and validates the raw Credit Card Fraud CSV (columns in RAW_COLUMNS order)."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path}: file not found; run the download stage first")
    with open(path, "rb") as handle:
        head = handle.read(4096)
    sniff_not_csv(path, head)
    first_line = head.splitlines()[0].decode("utf-8-sig", errors="replace")  # BOM: Excel
    header = next(csv.reader([first_line]))
    header = [name.strip() for name in header]
    check_header(path, header, RAW_COLUMNS)
    dtypes = {column: np.float64 for column in RAW_COLUMNS}
    try:
        frame = pd.read_csv(path, dtype=dtypes, engine="c", skip_blank_lines=False)
    except pd.errors.ParserError as error:  # a ValueError too: must be caught first
        raise PipelineError(f"{path}: malformed CSV: {str(error).strip()}; every row must "
                            f"have {len(RAW_COLUMNS)} fields") from None
    except ValueError:
        # A non-numeric cell: read again as text to say exactly where.
        try:
            frame = pd.read_csv(path, dtype=str, engine="c", skip_blank_lines=False,
                                keep_default_na=False, na_values=[""])
        except pd.errors.ParserError as error:
            raise PipelineError(f"{path}: malformed CSV: {error}".strip()) from None
    if not isinstance(frame.index, pd.RangeIndex):
        # pandas takes a first data row with one field too many as an index column
        raise PipelineError(f"{path}: malformed CSV: line 2 has {len(RAW_COLUMNS) + 1} fields, "
                            f"the header {len(RAW_COLUMNS)}; every row must have "
                            f"{len(RAW_COLUMNS)} fields")
    frame.columns = [str(c).strip() for c in frame.columns]
    if frame.empty:
        raise PipelineError(f"{path}: has a header but no data rows")
    frame = validate_raw_frame(path, frame[RAW_COLUMNS].copy())
    if int(frame[LABEL].sum()) == 0:
        raise PipelineError(f"{path}: no fraud rows (Class = 1) among {len(frame):,} rows; "
                            "a fraud model needs positive examples")
    return frame


def summarise(raw: pd.DataFrame) -> dict[str, float | int]:
    """The data facts users check first (flat, for `dvc metrics show`)."""
    labels = raw[LABEL].to_numpy()
    duplicated = raw.duplicated(keep="first").to_numpy()
    return {
        "rows": int(len(raw)),
        "frauds": int(labels.sum()),
        "fraud_rate": float(labels.mean()),
        "duplicate_rows": int(duplicated.sum()),
        "duplicate_frauds": int((duplicated & (labels == 1)).sum()),
        "amount_zero_rows": int((raw["Amount"].to_numpy() == 0).sum()),
    }


def clean(raw: pd.DataFrame, eps: float) -> pd.DataFrame:
    """Drops Time (not meaningful across days) and log-transforms Amount, as the tutorial."""
    cleaned = raw.drop(columns=["Time", "Amount"])
    cleaned.insert(len(cleaned.columns) - 1, LOG_AMOUNT, np.log(raw["Amount"].to_numpy() + eps))
    return cleaned[[*FEATURES, LABEL]]


def read_table(path: str | Path, stage_hint: str) -> pd.DataFrame:
    """Reads a Parquet table written by an earlier stage, checking its columns."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path}: file not found; run the {stage_hint} stage first")
    try:
        frame = pd.read_parquet(path)
    except Exception as error:  # pyarrow raises several types for a corrupt file
        raise PipelineError(f"{path}: not a readable Parquet table ({error}); "
                            f"run the {stage_hint} stage again") from None
    check_header(path, list(frame.columns), [*FEATURES, LABEL])
    return frame


def write_table(path: Path, frame: pd.DataFrame) -> None:
    frame.to_parquet(path, index=False, engine="pyarrow", compression="snappy")


@dataclass(frozen=True)
class Splits:
    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame


def split(cleaned: pd.DataFrame, test_size: float, val_size: float, stratify: bool,
          seed: int) -> Splits:
    """Train / val / test as the tutorial (val is a fraction of what test leaves), seeded."""
    labels = cleaned[LABEL]
    frauds = int(labels.sum())
    try:
        rest, test = train_test_split(cleaned, test_size=test_size, random_state=seed,
                                      stratify=labels if stratify else None)
        train, val = train_test_split(rest, test_size=val_size, random_state=seed,
                                      stratify=rest[LABEL] if stratify else None)
    except ValueError as error:
        raise PipelineError(f"cannot split {len(cleaned):,} rows with {frauds} frauds "
                            f"(split.test_size={test_size}, split.val_size={val_size}): "
                            f"{error}") from None
    for name, part in (("train", train), ("val", val), ("test", test)):
        if int(part[LABEL].sum()) == 0:
            raise PipelineError(
                f"the {name} split would hold no fraud rows ({len(part):,} rows; {frauds} "
                f"frauds in all): use more data, set split.stratify: true, or change "
                f"split.test_size / split.val_size")
    return Splits(train=train.reset_index(drop=True), val=val.reset_index(drop=True),
                  test=test.reset_index(drop=True))


def features_and_labels(table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    return table[FEATURES].to_numpy(dtype=np.float64), table[LABEL].to_numpy(dtype=np.uint8)


def fit_scaler(train_features: np.ndarray) -> StandardScaler:
    """Fitted on train alone: the model must not peek at val or test statistics."""
    return StandardScaler().fit(train_features)


def scale(features: np.ndarray, scaler: StandardScaler, clip: float) -> np.ndarray:
    """Standardise, clip to ±clip, float32 (what Keras computes in anyway)."""
    return np.clip(scaler.transform(features), -clip, clip).astype(np.float32)


def scaler_to_json(scaler: StandardScaler, clip: float) -> dict:
    return {
        "features": list(FEATURES),
        "mean": [float(v) for v in scaler.mean_],
        "scale": [float(v) for v in scaler.scale_],
        "clip": float(clip),
    }
