"""The data stages' logic: read and validate the raw CSV, clean, split, scale.

No TensorFlow here: these stages must start fast.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..core.declaration import (
    CREDIT_CARD,
    CREDIT_CARD_LAYOUT,
    DAY_SECONDS,
    DataDeclaration,
    Layout,
    learn_levels,
    one_hot,
    one_hot_names,
)
from ..core.params import SplitParams
from ..core.schema import validate_raw_frame
from ..errors import PipelineError, require_file
from .rawcsv import open_csv, read_frames

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


def read_raw_csv(path: str | Path, sha256: str | None = None,
                 declaration: DataDeclaration = CREDIT_CARD) -> pd.DataFrame:
    """Reads and validates the raw CSV against the data declaration: its columns in the
    layout's `raw_columns` order (dropped ones gone; `layout_of` gives the layout).

    With `sha256` (download.sha256) the file must still be the one downloaded: DVC re-hashes
    a file only when its size, mtime or inode changes, so an edit in place could otherwise
    flow into every later stage. The hash is taken while reading, not in a second pass.
    """
    path = Path(path)
    opened = open_csv(path, missing_hint="; run the download stage first",
                      hashing=sha256 is not None)
    try:
        layout = declaration.resolve(path, opened.columns)
        try:
            if layout.keys or layout.categorical or layout.time_format == "iso8601" \
                    or isinstance(layout.positive, str) or isinstance(layout.negative, str):
                raise ValueError("text columns")  # read as text: keys must stay verbatim
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
    frame = validate_raw_frame(path, frame[layout.raw_columns], layout=layout)
    if int(frame[layout.label].sum()) == 0:
        raise PipelineError(f"{path}: no fraud rows ({layout.label} = {layout.positive}) among "
                            f"{len(frame):,} rows; a fraud model needs positive examples")
    return frame


def check_raw_sha256(path: Path, digest: str, expected: str) -> None:
    if digest != expected:
        raise PipelineError(f"{path}: sha256 is {digest}, download.sha256 expects {expected}: "
                            "the file changed after the download (edited in place? DVC misses "
                            "an edit that keeps size and mtime); run `dvc repro --force "
                            "download`, or set download.sha256 to the new checksum (or null) "
                            "if the change is meant")


def _row_hashes(frame: pd.DataFrame) -> np.ndarray:
    """A 64-bit hash of each row's values (pandas' value hash: -0.0 as 0.0, NaNs alike)."""
    hashes = np.zeros(len(frame), dtype=np.uint64)
    for column in frame.columns:
        hashes = hashes * np.uint64(0x100000001B3) ^ pd.util.hash_array(frame[column].to_numpy())
    return hashes


def duplicated_rows(frame: pd.DataFrame) -> np.ndarray:
    """Exactly `frame.duplicated(keep="first")`, without its superlinear cost on millions of
    rows (0.4 s at 284,807 rows, 11 s at 10×; bench/NOTES.md): rows are first told apart by a
    64-bit hash of their values, and only rows whose hash repeats are compared for real."""
    candidates = pd.Series(_row_hashes(frame)).duplicated(keep=False).to_numpy()
    duplicated = np.zeros(len(frame), dtype=bool)
    if candidates.any():
        duplicated[candidates] = frame[candidates].duplicated(keep="first").to_numpy()
    return duplicated


def duplicate_groups(frame: pd.DataFrame) -> np.ndarray:
    """Per row, the position of the first row with exactly the same values (itself if none).

    Hashes first, exact comparison only among rows whose hash repeats (as `duplicated_rows`).
    """
    groups = np.arange(len(frame))
    candidates = pd.Series(_row_hashes(frame)).duplicated(keep=False).to_numpy()
    if candidates.any():
        rows = np.nonzero(candidates)[0]
        exact = frame.iloc[rows].groupby(list(frame.columns), sort=False, dropna=False).ngroup()
        groups[rows] = pd.Series(rows).groupby(exact.to_numpy()).transform("min").to_numpy()
    return groups


def summarise(table: pd.DataFrame, layout: Layout = CREDIT_CARD_LAYOUT
              ) -> dict[str, float | int]:
    """The data facts users check first (flat, for `dvc metrics show`). Duplicates are rows
    identical in every column but the ids, time included."""
    labels = table[layout.label].to_numpy()
    duplicated = duplicated_rows(table[layout.compared_columns])
    summary = {
        "rows": int(len(table)),
        "frauds": int(labels.sum()),
        "fraud_rate": float(labels.mean()),
        "duplicate_rows": int(duplicated.sum()),
        "duplicate_frauds": int((duplicated & (labels == 1)).sum()),
    }
    if layout.amount is not None:
        summary["amount_zero_rows"] = int((table[layout.amount].to_numpy() == 0).sum())
    return summary


def clean(raw: pd.DataFrame, eps: float, layout: Layout = CREDIT_CARD_LAYOUT) -> pd.DataFrame:
    """Adds the amount's log feature, `log(amount + eps)` (the tutorial's "Log Amount"). The
    time stays for the time split and audits, keys for audits and scores, the amount for
    amount-based costs; `scale` keeps only the layout's features."""
    if layout.amount is not None and layout.log_feature is not None:
        raw = raw.assign(**{layout.log_feature: np.log(raw[layout.amount].to_numpy() + eps)})
    return raw[layout.table_columns]


def read_table(path: str | Path, stage_hint: str, declaration: DataDeclaration = CREDIT_CARD
               ) -> pd.DataFrame:
    """Reads a Parquet table written by an earlier stage, checking its columns against the
    declaration (`layout_of` gives its layout)."""
    path = require_file(path, stage_hint, "file")
    try:
        frame = pd.read_parquet(path)
    except Exception as error:  # pyarrow raises several types for a corrupt file
        raise PipelineError(f"{path}: not a readable Parquet table ({error}); "
                            f"run the {stage_hint} stage again") from None
    declaration.resolve(path, list(frame.columns), derived=True)
    return frame


def layout_of(frame: pd.DataFrame, declaration: DataDeclaration, derived: bool = True
              ) -> Layout:
    """The layout of a table read by `read_table` (derived) or `read_raw_csv` (raw)."""
    return declaration.resolve("table", list(frame.columns), derived=derived)


def write_table(path: Path, frame: pd.DataFrame, layout: Layout = CREDIT_CARD_LAYOUT) -> None:
    # Dictionary encoding only for the label: on the float features, whose values hardly
    # repeat, pyarrow's attempt at it made writing 3× slower and the files larger.
    dictionary = [layout.label] if layout.label in frame.columns else False
    frame.to_parquet(path, index=False, engine="pyarrow", compression="snappy",
                     use_dictionary=dictionary)


SPLIT_NAMES = ("train", "val", "test")
# Rows a time split drops besides duplicates (-1): in a delay gap, of a card with a known
# fraud (val and test), before split.train_days, between a moved-back fold's val and test.
GAP, KNOWN_FRAUD, EARLY, AFTER_VAL = -2, -3, -4, -5


@dataclass(frozen=True)
class Splits:
    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    summary: dict[str, int]  # rows and frauds per split, duplicates across / dropped


def _split_sizes(rows: int, test_size: float, val_size: float) -> tuple[int, int]:
    """(train, val) sizes as train_test_split counts them: test first, val of what remains."""
    test = math.ceil(test_size * rows)
    val = math.ceil(val_size * (rows - test))
    return rows - test - val, val


def _random_assignment(groups: np.ndarray, labels: np.ndarray, settings: SplitParams,
                       seed: int) -> np.ndarray:
    """Split index (0 train, 1 val, 2 test) per row, drawn per duplicate group: a group goes
    whole to one split, stratified by whether it holds a fraud when `method: stratified`."""
    train_test_split = _lazy("train_test_split")
    firsts, inverse = np.unique(groups, return_inverse=True)
    group_labels = np.zeros(len(firsts), dtype=np.int8)
    np.maximum.at(group_labels, inverse, labels)
    stratify = settings.method == "stratified"
    positions = np.arange(len(firsts))
    rest, test = train_test_split(positions, test_size=settings.test_size, random_state=seed,
                                  stratify=group_labels if stratify else None)
    train, val = train_test_split(rest, test_size=settings.val_size, random_state=seed,
                                  stratify=group_labels[rest] if stratify else None)
    of_group = np.zeros(len(firsts), dtype=np.int8)
    of_group[val], of_group[test] = 1, 2
    return of_group[inverse]


@dataclass(frozen=True)
class Windows:
    """Where a time split cuts (seconds): train from `first_train`, val from `first_val` to
    `end_val`, test from `first_test`; before val and before test, a gap of the delay."""
    first_train: float
    first_val: float
    end_val: float
    first_test: float


def _refuse_fold(settings: SplitParams, gap: float, folds: int) -> None:
    train = "empty (1 day at least)" if settings.train_days is None else settings.train_days
    fits = f"folds 0 to {folds - 1} ({folds} folds)" if folds else "no fold"
    raise PipelineError(f"split.fold = {settings.fold}: its training window would begin before "
                        f"the data's first day; with split.val_days {settings.val_days}, "
                        f"split.train_days {train} and a {gap / DAY_SECONDS:g}-day delay this "
                        f"table holds {fits}; choose a fold among them (with fraud sweep "
                        "--folds: fewer folds)")


def day_windows(times: np.ndarray, settings: SplitParams, gap: float) -> Windows:
    """The windows of a split by days (split.test_days / val_days), counted back from the
    last day, with fold k's train and val moved back k x val_days days (test stays).

    A fold that would start training before the data's first day is an error that says how
    many folds the table holds; fold 0 is the usual split and is never refused.
    """
    assert settings.test_days is not None and settings.val_days is not None
    days = np.floor(times / DAY_SECONDS)
    first_test = (days.max() - settings.test_days + 1) * DAY_SECONDS if len(times) else 0.0
    val_length = settings.val_days * DAY_SECONDS
    usual_val = first_test - gap - val_length
    first_val = usual_val - settings.fold * val_length
    # All earlier days (no train_days): at least one day of training must be left.
    train_length = DAY_SECONDS if settings.train_days is None else \
        settings.train_days * DAY_SECONDS
    if settings.fold > 0 and len(times):
        # Folds whose training window starts on or after the data's first day.
        room = usual_val - gap - train_length - days.min() * DAY_SECONDS
        folds = max(0, int(room // val_length) + 1)
        if settings.fold >= folds:
            _refuse_fold(settings, gap, folds)
    first_train = -np.inf if settings.train_days is None else first_val - gap - train_length
    return Windows(first_train=first_train, first_val=first_val,
                   end_val=first_val + val_length, first_test=first_test)


def _time_assignment(times: np.ndarray, groups: np.ndarray, settings: SplitParams,
                     delay_days: int = 0) -> np.ndarray:
    """Earliest rows to train, then val, then test; a tie in time never straddles a cut.

    By fractions of the rows, or (split.test_days / val_days) by whole days counted back from
    the last one (`day_windows`; a fold moves train and val back, and the rows between its
    val and test's gap are dropped, -5). A gap of `delay_days` before val and before test is
    dropped (-2): a model trained up to a day knows no label of the `delay` days before it.
    With grouping, a later copy of a row lands in the split of its earliest copy's, or is
    dropped (-1) when that split is an earlier one: keeping it would put a past row in the
    future or a future row in the past.
    """
    gap = delay_days * DAY_SECONDS
    if settings.test_days is not None and settings.val_days is not None:
        windows = day_windows(times, settings, gap)
    else:
        order = np.argsort(times, kind="stable")
        n_train, n_val = _split_sizes(len(times), settings.test_size, settings.val_size)
        sorted_times = times[order]
        first_val = sorted_times[min(n_train, len(times) - 1)]
        first_test = sorted_times[min(n_train + n_val, len(times) - 1)]
        windows = Windows(-np.inf, first_val, first_test - gap, first_test)
    first_val, first_test = windows.first_val, windows.first_test
    assignment = np.where(times < first_val, 0, np.where(times < first_test, 1, 2))
    assignment = assignment.astype(np.int8)
    if settings.group_duplicates:
        of_first = assignment[groups]  # groups[i] is the group's earliest row (data sorted)
        assignment = np.where(assignment == of_first, assignment, -1).astype(np.int8)
    in_gap = ((times >= first_val - gap) & (times < first_val)) \
        | ((times >= first_test - gap) & (times < first_test))
    assignment = np.where(in_gap & (assignment >= 0), GAP, assignment)
    after_val = (times >= windows.end_val) & (times < first_test - gap)
    assignment = np.where(after_val & (assignment >= 0), AFTER_VAL, assignment)
    return np.where((times < windows.first_train) & (assignment >= 0), EARLY,
                    assignment).astype(np.int8)


def known_fraud_cards(times: np.ndarray, cards: np.ndarray, labels: np.ndarray,
                      delay_days: int, lookback_days: int) -> np.ndarray:
    """Per row, whether its card had a fraud known when the row's day began: one in the
    `lookback_days` days before that day's start minus `delay_days` (a label is known
    `delay_days` after its transaction). The handbook's evaluation leaves such cards out of
    its test: they are blocked already."""
    order = np.lexsort((times, cards))
    card_sorted, time_sorted = cards[order], times[order]
    fraud_sorted = labels[order] == 1
    day_start = np.floor(time_sorted / DAY_SECONDS) * DAY_SECONDS
    end = day_start - delay_days * DAY_SECONDS        # known: a fraud before this...
    start = end - lookback_days * DAY_SECONDS          # ...and at or after this
    # Per card, the cumulative fraud count over its rows (sorted by time): the frauds in
    # [start, end) are the count before `end` minus the count before `start`.
    boundaries = np.flatnonzero(np.r_[True, card_sorted[1:] != card_sorted[:-1], True])
    known = np.zeros(len(times), dtype=bool)
    for first, last in zip(boundaries[:-1], boundaries[1:], strict=True):
        stamps = time_sorted[first:last]
        frauds = np.r_[0, np.cumsum(fraud_sorted[first:last])]
        before_end = frauds[np.searchsorted(stamps, end[first:last], side="left")]
        before_start = frauds[np.searchsorted(stamps, start[first:last], side="left")]
        known[order[first:last]] = before_end > before_start
    return known


def _across_splits(groups: np.ndarray, assignment: np.ndarray) -> int:
    """Rows of val or test whose input has an identical copy in another split."""
    kept = assignment >= 0
    frame = pd.DataFrame({"group": groups[kept], "split": assignment[kept]})
    splits_per_group = frame.groupby("group")["split"].transform("nunique").to_numpy()
    return int(((splits_per_group > 1) & (frame["split"].to_numpy() > 0)).sum())


def split(cleaned: pd.DataFrame, settings: SplitParams, seed: int,
          layout: Layout = CREDIT_CARD_LAYOUT, delay_days: int = 0) -> Splits:
    """Train / val / test (val is a fraction of what test leaves), as `split.method` says.

    Duplicates are rows identical in every model feature and entity (the time is no input,
    nor are the ids); with `split.group_duplicates` they never straddle two splits. Rows
    keep their table order.
    """
    label, time = layout.label, layout.time
    labels = cleaned[label].to_numpy()
    frauds = int(labels.sum())
    if settings.method == "time":
        if time is None:
            raise PipelineError("split.method = 'time' needs a time column, and data.time is "
                                "null; declare it in params.yaml, or split at random")
        cleaned = cleaned.sort_values(time, kind="stable").reset_index(drop=True)
        labels = cleaned[label].to_numpy()
    # The entities belong to a transaction's identity: on a table of few inputs (raw card
    # transactions: the amount alone), equal amounts of different cards are no duplicates.
    groups = duplicate_groups(cleaned[[*layout.entities, *layout.features,
                                       *layout.categorical]])
    draw_groups = groups if settings.group_duplicates else np.arange(len(cleaned))
    try:
        if settings.method == "time":
            times = cleaned[time].to_numpy(dtype=np.float64)
            assignment = _time_assignment(times, draw_groups, settings, delay_days)
            if settings.known_fraud_days is not None:
                known = known_fraud_cards(times, cleaned[layout.entities[0]].to_numpy(),
                                          labels, delay_days, settings.known_fraud_days)
                assignment[known & (assignment > 0)] = KNOWN_FRAUD
        else:
            assignment = _random_assignment(draw_groups, labels, settings, seed)
    except ValueError as error:
        raise PipelineError(f"cannot split {len(cleaned):,} rows with {frauds} frauds "
                            f"(split.test_size={settings.test_size}, split.val_size="
                            f"{settings.val_size}): {error}") from None
    parts = {name: cleaned[assignment == index].reset_index(drop=True)
             for index, name in enumerate(SPLIT_NAMES)}
    for name, part in parts.items():
        if int(part[label].sum()) == 0:
            raise PipelineError(
                f"the {name} split would hold no fraud rows ({len(part):,} rows; {frauds} "
                f"frauds in all): use more data, set split.method: stratified, or change "
                f"split.test_size / split.val_size")
    summary = {f"{name}_{what}": int(len(part) if what == "rows" else part[label].sum())
               for name, part in parts.items() for what in ("rows", "frauds")}
    summary["duplicates_across_splits"] = _across_splits(groups, assignment)
    summary["duplicates_dropped"] = int((assignment == -1).sum())
    if settings.method == "time" and (delay_days or settings.test_days is not None
                                      or settings.known_fraud_days is not None):
        summary["gap_dropped"] = int((assignment == GAP).sum())
        summary["known_fraud_dropped"] = int((assignment == KNOWN_FRAUD).sum())
        summary["before_train_dropped"] = int((assignment == EARLY).sum())
    if settings.fold > 0:  # fold 0's summary stays as it always was
        summary["fold"] = settings.fold
        summary["after_val_dropped"] = int((assignment == AFTER_VAL).sum())
    return Splits(**parts, summary=summary)


def features_and_labels(table: pd.DataFrame, layout: Layout = CREDIT_CARD_LAYOUT
                        ) -> tuple[np.ndarray, np.ndarray]:
    return (table[layout.features].to_numpy(dtype=np.float64),
            table[layout.label].to_numpy(dtype=np.uint8))


def fit_scaler(train_features: np.ndarray) -> StandardScaler:
    """Fitted on train alone: the model must not peek at val or test statistics."""
    return _lazy("StandardScaler")().fit(train_features)


def scale(features: np.ndarray, scaler: StandardScaler, clip: float) -> np.ndarray:
    """Standardise, clip to ±clip, float32 (what Keras computes in anyway)."""
    return np.clip(scaler.transform(features), -clip, clip).astype(np.float32)


Categories = dict[str, tuple[str, ...]]  # categorical column -> its levels, in order


def learn_categories(train: pd.DataFrame, layout: Layout, max_levels: int,
                     label: str = "the train split") -> Categories:
    """Each categorical column's levels, from the training split alone (sorted)."""
    return {column: learn_levels(label, column, train[column].to_numpy(), max_levels)
            for column in layout.categorical}


def encode_categories(table: pd.DataFrame, categories: Categories) -> np.ndarray:
    """The one-hot blocks, in column order: (rows, total levels) float32 of 0/1; a missing
    or unseen category is a row of zeros."""
    blocks = [one_hot(table[column].to_numpy(), levels) for column, levels in categories.items()]
    return np.concatenate(blocks, axis=1) if blocks else np.zeros((len(table), 0), np.float32)


def scaled_features(table: pd.DataFrame, scaler: StandardScaler, clip: float,
                    layout: Layout, categories: Categories) -> np.ndarray:
    """What the models read: the scaled numeric features, then the one-hot blocks (0/1,
    neither standardised nor clipped); float32."""
    numeric = scale(features_and_labels(table, layout)[0], scaler, clip)
    if not categories:
        return numeric
    return np.concatenate([numeric, encode_categories(table, categories)], axis=1)


def scaler_to_json(scaler: StandardScaler, clip: float, layout: Layout = CREDIT_CARD_LAYOUT,
                   categories: Categories | None = None) -> dict:
    """The feature specification; `categorical` only with categorical columns (the Credit
    Card Fraud file stays as it was)."""
    spec = {
        "inputs": layout.inputs,
        "log_input": layout.amount,
        "features": [*layout.features, *(name for column, levels in (categories or {}).items()
                                         for name in one_hot_names(column, levels))],
        "mean": [float(v) for v in scaler.mean_],
        "scale": [float(v) for v in scaler.scale_],
        "clip": float(clip),
    }
    if categories:
        # A list: write_json sorts keys, and the columns' order is the features' order.
        spec["categorical"] = [{"column": column, "levels": list(levels)}
                               for column, levels in categories.items()]
    return spec
