"""The card-transaction simulator (download.url: transactions): the handbook's design,
deterministic, and a table the pipeline reads through its declaration."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from fraud.core.declaration import CREDIT_CARD
from fraud.core.params import TransactionsParams, parse_params
from fraud.data.download import download
from fraud.data.transactions import (
    COLUMNS,
    DECLARATION,
    FRAUD_AMOUNT,
    _compromised,
    _terminals_in_reach,
    simulate,
)
from fraud.errors import PipelineError

ROOT = Path(__file__).resolve().parents[2]
SMALL = TransactionsParams(customers=300, terminals=600, days=40, start="2024-01-01",
                           radius=5.0, seed=3)


@pytest.fixture(scope="module")
def small() -> pd.DataFrame:
    return simulate(SMALL)


def data_section(declaration: Any) -> dict[str, Any]:
    """A declaration as params.yaml's data: section holds it (the history comes from the
    features: section)."""
    return {k: v for k, v in dataclasses.asdict(declaration).items() if k != "history"}


def test_the_table_has_the_declared_columns_in_time_order(small: pd.DataFrame) -> None:
    assert tuple(small.columns) == COLUMNS
    assert list(small["transaction_id"]) == list(range(len(small)))
    times = pd.to_datetime(small["tx_datetime"])
    assert times.is_monotonic_increasing
    assert times.min() >= pd.Timestamp("2024-01-01")
    assert times.max() < pd.Timestamp("2024-01-01") + pd.Timedelta(days=40)
    assert (small["tx_amount"] >= 0).all()
    assert set(small["tx_fraud"]) == {0, 1}
    layout = DECLARATION.resolve("t.csv", list(small.columns))
    assert layout.inputs == ["tx_amount"] and layout.entities == ("customer_id", "terminal_id")


def test_it_is_deterministic_for_its_seed(small: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(simulate(SMALL), small)
    other = simulate(dataclasses.replace(SMALL, seed=4))
    assert len(other) != len(small) or not other.equals(small)


def test_every_large_amount_is_a_fraud_and_there_are_others(small: pd.DataFrame) -> None:
    fraud = small["tx_fraud"] == 1
    assert fraud[small["tx_amount"] > FRAUD_AMOUNT].all()
    assert (fraud & (small["tx_amount"] <= FRAUD_AMOUNT)).sum() > 0  # terminals, customers


def test_terminals_in_reach_match_a_brute_force_count() -> None:
    rng = np.random.default_rng(0)
    customers, terminals = rng.uniform(0, 100, (1_203, 2)), rng.uniform(0, 100, (700, 2))
    offsets, indices = _terminals_in_reach(customers, terminals, 7.0)
    for c in (0, 499, 500, 1_202):
        near = np.flatnonzero(((terminals - customers[c]) ** 2).sum(axis=1) < 49.0)
        assert list(indices[offsets[c]:offsets[c + 1]]) == list(near)


def test_a_compromise_lasts_its_days_from_the_day_drawn() -> None:
    rng = np.random.default_rng(1)
    marks = _compromised(rng, days=30, population=50, per_day=2, duration=5)
    assert marks.shape == (30, 50)
    first = np.flatnonzero(marks[0])
    assert len(first) == 2 and marks[:5, first].all()
    assert marks.sum(axis=1).min() >= 2 and marks.sum(axis=1).max() <= 10


def test_the_handbook_size_lands_near_its_published_counts() -> None:
    table = simulate(TransactionsParams())
    # The handbook: 1,754,155 transactions and 14,681 frauds (0.84 %) from its own draws.
    assert abs(len(table) / 1_754_155 - 1) < 0.04
    assert 0.0075 < table["tx_fraud"].mean() < 0.0095


def params_with(**changes: object) -> dict:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        raw.setdefault(section, {})[key] = value
    return raw


@pytest.mark.parametrize(("changes", "words"), [
    ({"transactions__customers": 0}, "transactions.customers = 0 is invalid"),
    ({"transactions__customers": 100_000}, "customers x days"),
    ({"transactions__radius": -1}, "a distance in (0, 150]"),
    ({"transactions__start": "April"}, "a date, YYYY-MM-DD"),
    ({"transactions__colour": 1}, "unknown key(s) 'transactions.colour'"),
])
def test_bad_simulator_params_are_one_line(changes: dict, words: str) -> None:
    with pytest.raises(PipelineError) as error:
        parse_params(params_with(**changes))
    assert words in str(error.value) and "\n" not in str(error.value)


def test_the_source_needs_its_declaration() -> None:
    raw = params_with(download__url="transactions")
    with pytest.raises(PipelineError, match=re.escape("generates the card transactions table")):
        parse_params(raw)
    raw["data"] = data_section(DECLARATION)
    params = parse_params(raw)
    assert params.data != CREDIT_CARD and params.download.raw_sha256 is None


def test_download_writes_the_table_and_clean_reads_it(tmp_path: Path) -> None:
    from fraud.data.prepare import layout_of, read_raw_csv

    raw = params_with(download__url="transactions")
    raw["data"] = data_section(DECLARATION)
    params = parse_params(raw)
    out = tmp_path / "raw.csv"
    result = download(params.download, out, seed=0, simulation=SMALL)
    assert result.source == "transactions" and not result.checked
    frame = read_raw_csv(out, None, params.data)
    layout = layout_of(frame, params.data, derived=False)
    assert len(frame) == len(simulate(SMALL)) and layout.inputs == ["tx_amount"]
    assert frame["tx_datetime"].iloc[0] >= pd.Timestamp("2024-01-01", tz="UTC").timestamp()


def test_categorical_fields_leave_the_rest_alone_and_their_fraud_rates_differ(
        small: pd.DataFrame, tmp_path: Path) -> None:
    from fraud.data.prepare import read_raw_csv
    from fraud.data.transactions import CATEGORICAL_DECLARATION, CHANNELS

    settings = dataclasses.replace(SMALL, categorical=True)
    table = simulate(settings)
    assert list(table.columns) == [*COLUMNS[:-1], "merchant_category", "country", "channel",
                                   "tx_fraud"]
    pd.testing.assert_frame_equal(table[list(COLUMNS)], small)  # same rows, same labels
    assert table.equals(simulate(settings))
    assert set(table["channel"]) == set(CHANNELS)
    rates = table.groupby("channel")["tx_fraud"].mean()
    assert rates["web"] > 1.5 * rates["pos"]
    abroad = table.groupby("customer_id")["country"].transform(lambda c: c != c.mode()[0])
    assert table["tx_fraud"][abroad].mean() > 2 * table["tx_fraud"][~abroad].mean()
    by_terminal = table.groupby("merchant_category")["tx_fraud"].mean()
    assert by_terminal[["mcc01", "mcc02", "mcc03", "mcc04"]].mean() > by_terminal.mean()
    # The switch and the declaration go together; the table reads back as declared.
    raw = params_with(download__url="transactions", transactions__categorical=True)
    raw["data"] = data_section(DECLARATION)
    with pytest.raises(PipelineError, match="merchant_category, country, channel"):
        parse_params(raw)
    raw["data"] = data_section(CATEGORICAL_DECLARATION)
    params = parse_params(raw)
    out = tmp_path / "raw.csv"
    download(params.download, out, seed=0, simulation=settings)
    frame = read_raw_csv(out, None, params.data)
    assert frame["channel"].isin(CHANNELS).all()
