"""History features (src/fraud/data/history.py, the features stage): right, leak-free,
deterministic, the same when scoring, and the time split's delay gap."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from fraud.core.declaration import DAY_SECONDS, TRANSACTIONS, HistorySpec, Layout
from fraud.core.params import SplitParams, TransactionsParams
from fraud.data.history import add_history, history_of
from fraud.data.prepare import clean, split, write_table
from fraud.data.transactions import simulate
from fraud.errors import PipelineError
from tests.conftest import parse_error, with_value

SPEC = HistorySpec(windows=(1, 7, 30), delay=7, spending=("customer_id",),
                   risk=("terminal_id",), time_flags=True)
DECLARATION = TRANSACTIONS.with_history(SPEC)
LAYOUT = DECLARATION.layout(())
BEFORE = TRANSACTIONS.layout(())
TIME, LABEL, AMOUNT = "tx_datetime", "tx_fraud", "tx_amount"


def _cleaned(rows: pd.DataFrame | None = None) -> pd.DataFrame:
    """A small simulated table as clean writes it: seconds for the time, the log amount."""
    if rows is None:
        rows = simulate(TransactionsParams(customers=150, terminals=300, days=50, seed=3))
    seconds = (pd.to_datetime(rows[TIME], utc=True)
               - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    return clean(rows.assign(**{TIME: seconds.astype("float64")}), 0.001, BEFORE)


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return _cleaned()


def _features(frame: pd.DataFrame, folder: Path, spec: HistorySpec = SPEC,
              memory_mb: int = 256) -> pd.DataFrame:
    folder.mkdir(parents=True, exist_ok=True)
    write_table(folder / "in.parquet", frame, BEFORE)
    add_history(folder / "in.parquet", folder / "out.parquet", spec,
                TRANSACTIONS.with_history(spec).layout(()), memory_mb)
    return pd.read_parquet(folder / "out.parquet")


def _by_hand(table: pd.DataFrame, i: int) -> dict[str, float]:
    """Row i's features, from their definition, one row at a time."""
    row, t = table.iloc[i], table[TIME]
    out: dict[str, float] = {}
    for days in SPEC.windows:
        mine = table[(table.customer_id == row.customer_id) & (t <= row[TIME])
                     & (t >= row[TIME] - days * DAY_SECONDS)]
        out[f"customer_tx_count_{days}d"] = len(mine)
        out[f"customer_mean_amount_{days}d"] = mine[AMOUNT].mean()
    for days in SPEC.windows:
        end = row[TIME] - SPEC.delay * DAY_SECONDS
        seen = table[(table.terminal_id == row.terminal_id) & (t <= end)
                     & (t >= end - days * DAY_SECONDS)]
        out[f"terminal_delayed_tx_count_{days}d"] = len(seen)
        out[f"terminal_fraud_rate_{days}d"] = seen[LABEL].mean() if len(seen) else 0.0
    stamp = pd.Timestamp(row[TIME], unit="s", tz="UTC")
    out["is_weekend"] = float(stamp.dayofweek >= 5)
    out["is_night"] = float(stamp.hour < 6)
    return out


def test_features_match_their_definition(table: pd.DataFrame, tmp_path: Path) -> None:
    featured = _features(table, tmp_path)
    assert list(featured.columns) == LAYOUT.table_columns
    pd.testing.assert_frame_equal(featured[BEFORE.table_columns], table)  # order, values kept
    rng = np.random.default_rng(0)
    for i in rng.choice(len(table), 60, replace=False):
        expected = _by_hand(table, int(i))
        got = featured.iloc[int(i)][list(expected)]
        np.testing.assert_allclose(got.to_numpy(float), list(expected.values()), rtol=1e-12,
                                   err_msg=f"row {i}")
    assert featured["terminal_fraud_rate_30d"].max() > 0  # the risk windows see frauds


def test_no_leakage_from_later_rows_or_unknown_labels(table: pd.DataFrame,
                                                      tmp_path: Path) -> None:
    """Changing any transaction after t, or any label newer than t - delay, leaves every
    feature of every transaction at or before t unchanged."""
    base = _features(table, tmp_path / "base")
    rng = np.random.default_rng(1)
    times = table[TIME].to_numpy()
    for k, t in enumerate(np.quantile(times, [0.3, 0.6, 0.9])):
        changed = table.copy()
        later = times > t
        changed.loc[later, AMOUNT] = changed.loc[later, AMOUNT] * 7 + 1
        changed.loc[later, "customer_id"] = rng.permutation(changed.loc[later, "customer_id"])
        changed.loc[later, "terminal_id"] = rng.permutation(changed.loc[later, "terminal_id"])
        unknown = times > t - SPEC.delay * DAY_SECONDS
        changed.loc[unknown, LABEL] = 1 - changed.loc[unknown, LABEL]
        changed["Log tx_amount"] = np.log(changed[AMOUNT] + 0.001)
        after = _features(changed, tmp_path / f"changed{k}")
        early = ~later
        pd.testing.assert_frame_equal(after.loc[early, list(LAYOUT.history)],
                                      base.loc[early, list(LAYOUT.history)])
        assert not after.loc[later, list(LAYOUT.history)].equals(
            base.loc[later, list(LAYOUT.history)])  # the changes did reach later rows


def test_output_is_deterministic_to_the_byte(table: pd.DataFrame, tmp_path: Path) -> None:
    _features(table, tmp_path / "a", memory_mb=64)
    _features(table.sample(frac=1.0, random_state=0).sort_values(TIME, kind="stable"),
              tmp_path / "b")
    _features(table, tmp_path / "c", memory_mb=4096)
    first = (tmp_path / "a" / "out.parquet").read_bytes()
    assert (tmp_path / "c" / "out.parquet").read_bytes() == first
    shuffled = pd.read_parquet(tmp_path / "b" / "out.parquet")
    merged = shuffled.set_index("transaction_id").loc[table["transaction_id"]].reset_index()
    pd.testing.assert_frame_equal(merged[LAYOUT.table_columns],
                                  pd.read_parquet(tmp_path / "a" / "out.parquet"))


def test_nothing_declared_is_a_byte_copy(table: pd.DataFrame, tmp_path: Path) -> None:
    write_table(tmp_path / "in.parquet", table, BEFORE)
    rows = add_history(tmp_path / "in.parquet", tmp_path / "out.parquet", HistorySpec(),
                       BEFORE, 256)
    assert rows == len(table)
    assert (tmp_path / "out.parquet").read_bytes() == (tmp_path / "in.parquet").read_bytes()


def test_scoring_computes_the_pipelines_features(table: pd.DataFrame, tmp_path: Path) -> None:
    """New transactions (no label) plus their history give the stage's numbers."""
    featured = _features(table, tmp_path)
    t = np.quantile(table[TIME], 0.8)
    new = (table[TIME] > t) & (table[TIME] <= t + 3 * DAY_SECONDS)
    rows = table.loc[new].drop(columns=[LABEL, "Log tx_amount"])
    history = table.loc[table[TIME] <= t]
    got = history_of(rows, history, SPEC, LAYOUT)
    pd.testing.assert_frame_equal(got, featured.loc[new, list(LAYOUT.history)])


def _split_settings(**changes: Any) -> SplitParams:
    base = SplitParams(method="time", group_duplicates=False, test_size=0.2, val_size=0.2,
                       test_days=7, val_days=7, train_days=7, known_fraud_days=None)
    return SplitParams(**{**base.__dict__, **changes})


def test_time_split_by_days_leaves_the_delay_gaps(table: pd.DataFrame) -> None:
    parts = split(table, _split_settings(), 0, BEFORE, delay_days=7)
    day = {name: np.floor(getattr(parts, name)[TIME] / DAY_SECONDS)
           for name in ("train", "val", "test")}
    last = np.floor(table[TIME].max() / DAY_SECONDS)
    assert (day["test"].min(), day["test"].max()) == (last - 6, last)
    assert (day["val"].min(), day["val"].max()) == (last - 20, last - 14)
    assert (day["train"].min(), day["train"].max()) == (last - 34, last - 28)
    summary = parts.summary
    assert summary["gap_dropped"] == int(((np.floor(table[TIME] / DAY_SECONDS) >= last - 13)
                                          & (np.floor(table[TIME] / DAY_SECONDS) <= last - 7)
                                          | (np.floor(table[TIME] / DAY_SECONDS) >= last - 27)
                                          & (np.floor(table[TIME] / DAY_SECONDS)
                                             <= last - 21)).sum())
    assert summary["before_train_dropped"] == int((np.floor(table[TIME] / DAY_SECONDS)
                                                   < last - 34).sum())


def test_time_split_drops_cards_with_a_known_fraud(table: pd.DataFrame) -> None:
    kept = split(table, _split_settings(known_fraud_days=10), 0, BEFORE, delay_days=7)
    assert kept.summary["known_fraud_dropped"] > 0
    frauds = table[table[LABEL] == 1]
    for name in ("val", "test"):
        part = getattr(kept, name)
        for _, row in part.sample(300, random_state=0).iterrows():
            end = np.floor(row[TIME] / DAY_SECONDS) * DAY_SECONDS - 7 * DAY_SECONDS
            mine = frauds[(frauds.customer_id == row.customer_id) & (frauds[TIME] < end)
                          & (frauds[TIME] >= end - 10 * DAY_SECONDS)]
            assert mine.empty, (name, row.transaction_id)
    everything = split(table, _split_settings(), 0, BEFORE, delay_days=7)
    assert len(kept.train) == len(everything.train)  # train is never filtered
    assert len(everything.test) - len(kept.test) + len(everything.val) - len(kept.val) \
        == kept.summary["known_fraud_dropped"]


def _features_params(raw: dict[str, Any], **values: Any) -> dict[str, Any]:
    raw = copy.deepcopy(raw)
    raw["data"] = {"label": "tx_fraud", "time": "tx_datetime", "ids": ["transaction_id"],
                   "entities": ["customer_id", "terminal_id"], "amount": "tx_amount",
                   "numeric": []}
    raw["features"] = {"windows": [1, 7], "delay": 7, "spending": ["customer_id"],
                       "risk": ["terminal_id"], "time_flags": True, "memory_mb": 512, **values}
    return raw


def test_features_params_give_the_layouts_inputs(raw_params: dict[str, Any]) -> None:
    from fraud.core.params import parse_params

    params = parse_params(_features_params(raw_params, spending="customer_id", windows="1,7"))
    assert params.data.history == HistorySpec(
        windows=(1, 7), delay=7, spending=("customer_id",), risk=("terminal_id",),
        time_flags=True)
    layout = params.data.resolve("t", BEFORE.raw_columns)
    assert layout.inputs == [*params.data.history.columns(), "tx_amount"]
    assert layout.raw_columns == BEFORE.raw_columns


@pytest.mark.parametrize(("change", "fragment"), [
    ({"spending": ["card"]}, ("features.spending = ['card'] is invalid: expected distinct "
                             "columns of data.entities (customer_id, terminal_id)")),
    ({"windows": []}, "features.windows = [] is invalid: expected at least one window"),
    ({"windows": [0]}, ("features.windows[0] = 0 is invalid: expected a whole number of days "
                       "from 1 to 366")),
    ({"windows": [7, 7]}, "expected distinct numbers of days"),
    ({"delay": -1}, "features.delay = -1 is invalid"),
    ({"memory_mb": 10}, "features.memory_mb = 10 is invalid: expected megabytes from 64"),
    ({"window": [1]}, "unknown key(s) 'features.window'; 'features' takes windows, delay"),
])
def test_features_params_errors(raw_params: dict[str, Any], change: dict[str, Any],
                                fragment: str) -> None:
    raw = _features_params(raw_params, **change)
    if "window" in change:
        del raw["features"]["windows"]
    assert fragment in parse_error(raw)


def test_features_need_a_time_and_an_amount(raw_params: dict[str, Any]) -> None:
    raw = _features_params(raw_params)
    raw["data"]["time"] = None
    assert "the features: section needs a time column, and data.time is null" \
        in parse_error(raw)
    raw = _features_params(raw_params)
    raw["data"]["amount"] = None
    raw["data"]["numeric"] = ["tx_amount"]
    raw["evaluate"]["cost_fn"] = 500
    assert "features.spending profiles the amount, and data.amount is null" in parse_error(raw)


def test_a_feature_may_not_take_a_declared_columns_name(raw_params: dict[str, Any]) -> None:
    raw = _features_params(raw_params)
    raw["data"]["numeric"] = ["is_weekend"]
    assert ("the features stage would add the column 'is_weekend', a column of the data: "
            "section") in parse_error(raw)
    layout_error = pytest.raises(PipelineError, DECLARATION.resolve, "raw.csv",
                                 [*BEFORE.raw_columns, "is_night"])
    assert "raw.csv: column 'is_night' has the name of a history feature" \
        in str(layout_error.value)


def test_day_based_split_params(raw_params: dict[str, Any]) -> None:
    assert "expected time (split.test_days" in parse_error(
        with_value(copy.deepcopy(raw_params), "split.test_days", 7))
    raw = with_value(copy.deepcopy(raw_params), "split.method", "time")
    raw = copy.deepcopy(raw)
    assert "split.test_days = 7 is invalid: expected a number of days with split.val_days" \
        in parse_error(with_value(raw, "split.test_days", 7))
    raw = with_value(with_value(copy.deepcopy(raw_params), "split.method", "time"),
                     "split.known_fraud_days", 14)
    assert "split.known_fraud_days needs a card" in parse_error(raw)


def test_layout_without_history_is_the_raw_one() -> None:
    assert isinstance(DECLARATION.without_history().layout(()), Layout)
    assert DECLARATION.without_history().layout(()).table_columns == BEFORE.table_columns


def test_the_handbook_overrides_apply_as_dvc_applies_them(tmp_path: Path) -> None:
    """`dvc exp run -S` with tools/handbook_report.py's overrides (through DVC's own
    apply_overrides) leaves a params.yaml that parses into the handbook's setting. An
    override `data.numeric=[]` did not: ruamel wrote the next section's first key on the
    `features:` line."""
    import shutil

    from dvc.utils.hydra import apply_overrides

    from fraud.core.params import load_params
    from tools.handbook_report import OVERRIDES

    path = tmp_path / "params.yaml"
    shutil.copy(Path(__file__).resolve().parents[2] / "params.yaml", path)
    apply_overrides(str(path), [*OVERRIDES, "split.train_days=7"])
    params = load_params(path)
    assert params.data.history == SPEC and params.data.numeric == ()
    assert (params.split.test_days, params.split.train_days, params.split.known_fraud_days) \
        == (7, 7, 14)
