"""The data stages' logic: read and validate the raw CSV, clean, split, scale.

No TensorFlow here: these stages must start fast.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .errors import PipelineError
from .rawcsv import open_csv, read_frames
from .schema import FEATURES, LABEL, LOG_AMOUNT, RAW_COLUMNS, check_header, validate_raw_frame

if TYPE_CHECKING:
    from sklearn.preprocessing import StandardScaler

# scikit-learn loads on first use (PEP 562): importing it costs ~0.8 s, which the clean stage
# does not need (bench/NOTES.md). `data.train_test_split` still works, and can be patched.
_LAZY = {"train_test_split": "sklearn.model_selection", "StandardScaler": "sklearn.preprocessing"}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _lazy(name: str):
    return globals()[name] if name in globals() else __getattr__(name)


def read_raw_csv(path: str | Path, sha256: str | None = None) -> pd.DataFrame:
    """Reads and validates the raw Credit Card Fraud CSV (columns in RAW_COLUMNS order).

    With `sha256` (download.sha256) the file must still be the one downloaded: DVC re-hashes
    a file only when its size, mtime or inode changes, so an edit in place could otherwise
    flow into every later stage. The hash is taken while reading, not in a second pass.
    """
    path = Path(path)
    opened = open_csv(path, missing_hint="; run the download stage first",
                      hashing=sha256 is not None)
    try:
        check_header(path, opened.columns, RAW_COLUMNS)
        try:
            frame = next(read_frames(opened, dtype=np.float64))
        except ValueError:
            # A non-numeric cell: read again as text, for validation to say exactly where.
            opened.close()
            opened = open_csv(path, hashing=sha256 is not None)
            frame = next(read_frames(opened, dtype=str, keep_default_na=False,
                                     na_values=[""]))
        if sha256 is not None:
            check_raw_sha256(path, opened.rows.hexdigest(), sha256)
    finally:
        opened.close()
    if frame.empty:
        raise PipelineError(f"{path}: has a header but no data rows")
    # No .copy(): pandas' copy-on-write keeps the read frame safe from validate's column
    # writes; the copy cost ~2 s and ~0.5 GB peak memory at 2.8 M rows (bench/NOTES.md).
    frame = validate_raw_frame(path, frame[RAW_COLUMNS])
    if int(frame[LABEL].sum()) == 0:
        raise PipelineError(f"{path}: no fraud rows (Class = 1) among {len(frame):,} rows; "
                            "a fraud model needs positive examples")
    return frame


def check_raw_sha256(path: Path, digest: str, expected: str) -> None:
    if digest != expected:
        raise PipelineError(f"{path}: sha256 is {digest}, download.sha256 expects {expected}: "
                            "the file changed after the download (edited in place? DVC misses "
                            "an edit that keeps size and mtime); run `dvc repro --force "
                            "download`, or set download.sha256 to the new checksum (or null) "
                            "if the change is meant")


def duplicated_rows(frame: pd.DataFrame) -> np.ndarray:
    """Exactly `frame.duplicated(keep="first")`, without its superlinear cost on millions of
    rows (0.4 s at 284,807 rows, 11 s at 10×; bench/NOTES.md): rows are first told apart by a
    64-bit hash of their values, and only rows whose hash repeats are compared for real."""
    hashes = np.zeros(len(frame), dtype=np.uint64)
    for column in frame.columns:
        # pandas' own value hash: -0.0 hashes as 0.0 and every NaN alike, as duplicated() sees them
        hashes = hashes * np.uint64(0x100000001B3) ^ pd.util.hash_array(frame[column].to_numpy())
    candidates = pd.Series(hashes).duplicated(keep=False).to_numpy()
    duplicated = np.zeros(len(frame), dtype=bool)
    if candidates.any():
        duplicated[candidates] = frame[candidates].duplicated(keep="first").to_numpy()
    return duplicated


def summarise(raw: pd.DataFrame) -> dict[str, float | int]:
    """The data facts users check first (flat, for `dvc metrics show`)."""
    labels = raw[LABEL].to_numpy()
    duplicated = duplicated_rows(raw)
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
    # Dictionary encoding only for the label: on the float features, whose values hardly
    # repeat, pyarrow's attempt at it made writing 3× slower and the files larger.
    dictionary = [LABEL] if LABEL in frame.columns else False
    frame.to_parquet(path, index=False, engine="pyarrow", compression="snappy",
                     use_dictionary=dictionary)


@dataclass(frozen=True)
class Splits:
    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame


def split(cleaned: pd.DataFrame, test_size: float, val_size: float, stratify: bool,
          seed: int) -> Splits:
    """Train / val / test as the tutorial (val is a fraction of what test leaves), seeded."""
    train_test_split = _lazy("train_test_split")
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
    return _lazy("StandardScaler")().fit(train_features)


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
