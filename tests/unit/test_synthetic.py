"""The synthetic stand-in must look like the real creditcard.csv to every pipeline stage."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fraud.data.synthetic import TIME_MAX, generate_creditcard, write_creditcard_csv

# Spelled out, not rebuilt from the module's constant: this is the real file's first line.
REAL_HEADER = ('"Time","V1","V2","V3","V4","V5","V6","V7","V8","V9","V10","V11","V12","V13",'
               '"V14","V15","V16","V17","V18","V19","V20","V21","V22","V23","V24","V25","V26",'
               '"V27","V28","Amount","Class"')
ROWS, RATE, SEED = 5_000, 0.01, 7


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return generate_creditcard(ROWS, RATE, SEED)


@pytest.fixture(scope="module")
def csv_path(frame: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("synthetic") / "creditcard.csv"
    write_creditcard_csv(frame, path)
    return path


@pytest.fixture(scope="module")
def csv_lines(csv_path: Path) -> list[str]:
    raw = csv_path.read_bytes()
    assert b"\r" not in raw and raw.endswith(b"\n")
    return raw.decode("ascii").splitlines()


def fields(lines: list[str], column: int) -> list[str]:
    return [line.split(",")[column] for line in lines[1:]]


def test_header_matches_the_real_file(csv_lines: list[str]) -> None:
    assert csv_lines[0] == REAL_HEADER


def test_class_is_quoted_zero_or_one(csv_lines: list[str]) -> None:
    assert set(fields(csv_lines, -1)) == {'"0"', '"1"'}
    assert all(len(line.split(",")) == 31 for line in csv_lines[1:])


@pytest.mark.parametrize(("rows", "rate", "frauds"), [
    (5_000, 0.01, 50),
    (284_807 // 50, 492 / 284_807, 10),
    (100, 0.001, 1),   # rounds to 0: at least one fraud
    (2, 0.9, 1),       # rounds to 2: at least one normal row
    (10, 0.5, 5),
])
def test_row_and_fraud_counts_are_exact(rows: int, rate: float, frauds: int) -> None:
    generated = generate_creditcard(rows, rate, 0)
    assert len(generated) == rows
    assert int(generated["Class"].sum()) == frauds
    assert set(generated["Class"].unique()) == {0, 1}


def test_dtypes(frame: pd.DataFrame) -> None:
    assert frame["Time"].dtype == np.int64
    assert frame["Class"].dtype == np.int64
    assert all(frame[f"V{i}"].dtype == np.float64 for i in range(1, 29))


def test_time_is_sorted_whole_seconds_within_two_days(frame: pd.DataFrame,
                                                      csv_lines: list[str]) -> None:
    time = frame["Time"].to_numpy()
    assert (np.diff(time) >= 0).all()
    assert time.min() >= 0 and time.max() <= TIME_MAX
    assert all(re.fullmatch(r"\d+", value) for value in fields(csv_lines, 0))


def test_time_follows_the_day_night_cycle(frame: pd.DataFrame) -> None:
    hour = (frame["Time"] // 3600) % 24
    night = hour.between(1, 5).sum()
    day = hour.between(10, 14).sum()
    assert day > 3 * night


def test_amount_has_at_most_two_decimals_and_is_not_negative(frame: pd.DataFrame,
                                                             csv_lines: list[str]) -> None:
    texts = fields(csv_lines, -2)
    assert all(re.fullmatch(r"\d+(\.\d{1,2})?", text) for text in texts)
    assert (frame["Amount"] >= 0).all()
    assert "0" in texts  # the real file writes zero amounts as a bare 0


def test_amount_shares_like_the_real_file() -> None:
    generated = generate_creditcard(20_000, 0.05, 3)
    amount, fraud = generated["Amount"], generated["Class"] == 1
    assert (amount[fraud] <= 1).mean() == pytest.approx(0.368, abs=0.03)
    assert (amount[~fraud] <= 1).mean() == pytest.approx(0.107, abs=0.01)
    assert (amount[fraud] == 0).mean() == pytest.approx(0.0549, abs=0.015)
    assert (amount[~fraud] == 0).mean() == pytest.approx(0.0063, abs=0.003)
    assert 10 < amount[~fraud].median() < 40  # real: 22.00


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    paths = []
    for name, seed in (("a", 11), ("b", 11), ("c", 12)):
        paths.append(tmp_path / f"{name}.csv")
        write_creditcard_csv(generate_creditcard(ROWS, RATE, seed), paths[-1])
    a, b, c = (path.read_bytes() for path in paths)
    assert a == b
    assert a != c


def test_frauds_differ_from_normal_rows_like_the_real_ones(frame: pd.DataFrame) -> None:
    means = frame.groupby("Class").mean()
    # Real class means: V14 0.01 vs -6.97, V12 0.01 vs -6.26, V4 -0.01 vs 4.54, V11 -0.01 vs 3.80.
    assert means.loc[1, "V14"] < means.loc[0, "V14"] - 4
    assert means.loc[1, "V12"] < means.loc[0, "V12"] - 4
    assert means.loc[1, "V4"] > means.loc[0, "V4"] + 2.5
    assert means.loc[1, "V11"] > means.loc[0, "V11"] + 2


def test_features_use_the_class_covariance() -> None:
    generated = generate_creditcard(20_000, 0.05, 5)
    fraud = generated[generated["Class"] == 1]
    normal = generated[generated["Class"] == 0]
    # Real within-class correlations: frauds V1~V3 +0.91, V1~V2 -0.82; normal rows ~0.
    assert fraud["V1"].corr(fraud["V3"]) > 0.8
    assert fraud["V1"].corr(fraud["V2"]) < -0.7
    assert abs(normal["V1"].corr(normal["V3"])) < 0.1
    assert normal["V1"].std() == pytest.approx(1.93, rel=0.05)


def test_some_exact_duplicates_next_to_their_original(frame: pd.DataFrame) -> None:
    duplicated = frame.duplicated(keep="first").to_numpy()
    # Real share: 1081 / 284807 = 0.38 % of rows (and 3.9 % of frauds).
    assert 0.001 * ROWS <= duplicated.sum() <= 0.01 * ROWS
    values = frame.to_numpy()
    for row in np.flatnonzero(duplicated):
        assert (values[row] == values[row - 1]).all()


def test_read_csv_gives_back_the_same_numbers(frame: pd.DataFrame, csv_path: Path) -> None:
    # Shortest round-trip floats: pandas' default parser gives back the very same doubles.
    read = pd.read_csv(csv_path)
    pd.testing.assert_frame_equal(read, frame, check_exact=True)
    assert read["Class"].dtype == np.int64


def test_writer_rejects_a_frame_with_other_columns(frame: pd.DataFrame, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="columns"):
        write_creditcard_csv(frame.drop(columns="Time"), tmp_path / "x.csv")


@pytest.mark.parametrize(("rows", "rate", "seed", "message"), [
    (1, 0.01, 0, "rows"),
    (0, 0.01, 0, "rows"),
    (-5, 0.01, 0, "rows"),
    (100.0, 0.01, 0, "rows"),
    (True, 0.01, 0, "rows"),
    (100, 0.0, 0, "fraud_rate"),
    (100, 1.0, 0, "fraud_rate"),
    (100, -0.1, 0, "fraud_rate"),
    (100, math.nan, 0, "fraud_rate"),
    (100, "0.1", 0, "fraud_rate"),
    (100, 0.01, -1, "seed"),
    (100, 0.01, 1.5, "seed"),
])
def test_bad_arguments_raise_value_error(rows: object, rate: object, seed: object,
                                         message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate_creditcard(rows, rate, seed)  # type: ignore[arg-type]


def test_logistic_regression_separates_the_classes() -> None:
    """The real data gives a linear model ROC-AUC ~0.97; the stand-in must be as learnable."""
    train = generate_creditcard(20_000, 0.01, 21)
    test = generate_creditcard(20_000, 0.01, 22)  # held out: another seed
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1_000))
    model.fit(train.drop(columns="Class"), train["Class"])
    scores = model.predict_proba(test.drop(columns="Class"))[:, 1]
    assert roc_auc_score(test["Class"], scores) > 0.9
