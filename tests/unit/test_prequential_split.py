"""Prequential folds of a time split by days (`split.fold`, src/fraud/data/prepare.py): each
fold moves train and validation back by val_days days, keeps the delay gaps and the test
window, and fold 0 is the usual split."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from fraud.core.declaration import DAY_SECONDS, TRANSACTIONS
from fraud.core.params import SplitParams
from fraud.data.prepare import split
from fraud.errors import PipelineError
from tests.conftest import parse_error, with_value

LAYOUT = TRANSACTIONS.layout(())
TIME, LABEL = "tx_datetime", "tx_fraud"
DAYS, PER_DAY, DELAY = 60, 24, 7


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    """60 days of 24 transactions (one an hour) by 30 cards; 5 % of them frauds."""
    rng = np.random.default_rng(0)
    rows = DAYS * PER_DAY
    amounts = rng.gamma(2.0, 30.0, rows).round(2)
    return pd.DataFrame({
        TIME: 1.5e9 // DAY_SECONDS * DAY_SECONDS + np.arange(rows) * 3600.0,
        "transaction_id": np.arange(rows).astype(str),
        "customer_id": (np.arange(rows) % 30).astype(str),
        "terminal_id": rng.integers(0, 50, rows).astype(str),
        "tx_amount": amounts, "Log tx_amount": np.log(amounts + 0.001),
        LABEL: (rng.random(rows) < 0.05).astype(np.int64)})[LAYOUT.table_columns]


def _settings(**changes: Any) -> SplitParams:
    base = SplitParams(method="time", group_duplicates=True, test_size=0.2, val_size=0.2,
                       test_days=7, val_days=7, train_days=7, known_fraud_days=None)
    return SplitParams(**{**base.__dict__, **changes})


def _days(part: pd.DataFrame) -> tuple[int, int]:
    days = np.floor(part[TIME].to_numpy() / DAY_SECONDS)
    return int(days.min()), int(days.max())


@pytest.mark.parametrize("fold", [0, 1, 2])
@pytest.mark.parametrize("train_days", [7, None])
def test_a_fold_moves_train_and_val_back_and_keeps_gaps_and_test(
        table: pd.DataFrame, fold: int, train_days: int | None) -> None:
    parts = split(table, _settings(fold=fold, train_days=train_days), 0, LAYOUT, DELAY)
    last = int(np.floor(table[TIME].max() / DAY_SECONDS))
    first = int(np.floor(table[TIME].min() / DAY_SECONDS))
    shift = 7 * fold
    assert _days(parts.test) == (last - 6, last)  # test never moves
    assert _days(parts.val) == (last - 20 - shift, last - 14 - shift)  # 7-day gap before test
    assert _days(parts.train) == ((last - 34 - shift) if train_days else first,
                                  last - 28 - shift)  # 7-day gap before val
    whole_days = np.floor(table[TIME].to_numpy() / DAY_SECONDS)
    kept = len(parts.train) + len(parts.val) + len(parts.test)
    summary = parts.summary
    dropped = summary["gap_dropped"] + summary["before_train_dropped"] \
        + summary.get("after_val_dropped", 0)
    assert kept + dropped == len(table)
    assert summary["gap_dropped"] == 14 * PER_DAY
    if fold:
        assert summary["fold"] == fold  # metrics/data.json says which fold
        # Between the fold's val and the test's gap: its later folds' days, not split.
        assert summary["after_val_dropped"] == int(((whole_days > last - 14 - shift)
                                                    & (whole_days < last - 13)).sum())
    else:
        assert "fold" not in summary and "after_val_dropped" not in summary


def test_fold_zero_is_the_usual_split(table: pd.DataFrame) -> None:
    usual = split(table, _settings(known_fraud_days=2), 0, LAYOUT, DELAY)
    fold0 = split(table, _settings(known_fraud_days=2, fold=0), 0, LAYOUT, DELAY)
    for name in ("train", "val", "test"):
        pd.testing.assert_frame_equal(getattr(usual, name), getattr(fold0, name))
    assert usual.summary == fold0.summary


def test_the_known_fraud_rule_applies_to_a_folds_val_as_to_fold_zeros(
        table: pd.DataFrame) -> None:
    """A fold's validation drops exactly the rows fold 0's rule drops on those days."""
    everything = split(table, _settings(fold=1, train_days=None), 0, LAYOUT, DELAY)
    kept = split(table, _settings(fold=1, train_days=None, known_fraud_days=2), 0, LAYOUT,
                 DELAY)
    usual_all = split(table, _settings(train_days=None), 0, LAYOUT, DELAY)
    usual_kept = split(table, _settings(train_days=None, known_fraud_days=2), 0, LAYOUT,
                       DELAY)
    assert kept.summary["known_fraud_dropped"] > 0
    pd.testing.assert_frame_equal(kept.test, usual_kept.test)  # test: the same rows
    # Fold 1's val days are fold 0's train days: the same rule on them.
    val_ids = set(kept.val.transaction_id)
    assert val_ids < set(everything.val.transaction_id)
    dropped = set(everything.val.transaction_id) - val_ids
    assert len(dropped) + len(set(usual_all.test.transaction_id)
                              - set(usual_kept.test.transaction_id)) \
        == kept.summary["known_fraud_dropped"]


def test_too_many_folds_say_how_many_fit(table: pd.DataFrame) -> None:
    # 60 days: test 7, gap 7, val 7, gap 7, train 7 leave 25 days before fold 0's train:
    # 3 more folds of 7 days (folds 0 to 3).
    split(table, _settings(fold=3), 0, LAYOUT, DELAY)
    with pytest.raises(PipelineError) as info:
        split(table, _settings(fold=4), 0, LAYOUT, DELAY)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("split.fold = 4: its training window would begin before")
    assert "holds folds 0 to 3 (4 folds)" in message and "fraud sweep --folds" in message
    with pytest.raises(PipelineError, match="holds folds 0 to 4 "):
        split(table, _settings(fold=9, train_days=None), 0, LAYOUT, DELAY)


@pytest.mark.parametrize("changes, expected", [
    ({"split.fold": 1}, "0 unless the split is by days"),  # stratified
    ({"split.fold": 1, "split.method": "time"}, "0 unless the split is by days"),  # fractions
    ({"split.fold": -1}, "a whole number from 0 to 366"),
    ({"split.fold": 1.5}, "a whole number"),
])
def test_a_fold_needs_a_split_by_days(raw_params: dict[str, Any], changes: dict[str, Any],
                                      expected: str) -> None:
    for key, value in changes.items():
        with_value(raw_params, key, value)
    message = parse_error(raw_params)
    assert message.startswith("params.yaml: split.fold = ") and expected in message


def test_a_fold_of_a_split_by_days_is_accepted(raw_params: dict[str, Any]) -> None:
    from fraud.core.params import parse_params

    for key, value in {"split.method": "time", "split.test_days": 7, "split.val_days": 7,
                       "split.fold": "2"}.items():
        with_value(raw_params, key, value)
    assert parse_params(raw_params).split.fold == 2
    assert parse_params(with_value(raw_params, "split.fold", 0)).split.fold == 0
