"""End to end on a table that is not the Credit Card Fraud one, from params alone
(tools/example_table.py): label `label` (words), ISO 8601 time `ts`, 40 numeric columns
`f0`…`f39`, an id, an entity, no amount, and two categorical columns, `channel` and `country`
(`country` has a level only in the test period). `dvc repro` runs every stage, a time split
included, learns the levels on the training split, trains every model on them (gbdt with
native categorical splits), evaluates, ranks and ships a detector that takes the text;
`fraud predict` scores a CSV of those columns, carrying the id through, and `--explain`
explains raw rows, unseen and hostile text included.

One project for both (a whole `dvc repro` costs about a minute of the suite): the
categorical columns are drawn after everything else, so the numeric ones are those of the
plain table.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest

from fraud.kinds import _scikit
from fraud.serving.contract import CATEGORY_INPUT, INPUT_NAME, read_scaler
from tests.synthetic_project import fraud_predict, project_with_params
from tools.example_table import (
    CATEGORICAL,
    CATEGORICAL_DECLARATION,
    CHANNELS,
    COUNTRIES,
    FEATURES,
    LATE_COUNTRY,
    example_table,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project, its data: section declaring the example table, after one `dvc repro`."""
    root = tmp_path_factory.mktemp("other-table")
    table = root / "transactions.csv"
    example_table(6_000, fraud_rate=0.03, seed=1, categorical=True).to_csv(table, index=False)

    def declare(params: dict) -> None:
        params["download"].update(url=str(table), sha256=None)
        params["data"] = {**CATEGORICAL_DECLARATION, "max_levels": 20}
        params["split"]["method"] = "time"

    return project_with_params(root / "repo", declare)


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def test_every_stage_ran_and_the_card_names_the_declared_columns(project: Path) -> None:
    card = read_json(project / "models/fraud_detector.json")
    assert card["input_columns"] == FEATURES
    assert card["data"] == {"label": "label", "positive": "fraud", "negative": "legit",
                            "time": "ts", "ids": ["txn_id"], "entities": ["merchant"]}
    one_hot = [f"{column}={level}" for column, levels in (("channel", CHANNELS),
               ("country", COUNTRIES)) for level in levels]
    # no amount: nothing logged; the categorical columns one-hot after the numeric ones
    assert card["standardisation"]["features"] == [*FEATURES, *one_hot]
    assert card["preprocessing"][0] == "features = [f0, ..., country=PT, country=UK]"
    data = read_json(project / "metrics/data.json")
    assert data["rows"] == 6_000 and "amount_zero_rows" not in data
    summary = read_json(project / "metrics/evaluate.json")
    assert 0.5 < summary["auc"] <= 1.0  # six of the columns carry a real signal
    # Card Precision@k with merchant, the first entity, as the card; over the test days.
    assert summary["card_precision_low"] <= summary["card_precision"] \
        <= summary["card_precision_high"] <= 1.0
    assert summary["card_precision_days"] >= 5 and "val_card_precision" in summary


def test_reports_use_the_declared_names(project: Path) -> None:
    importance = read_json(project / "metrics/importance.json")
    tops = {importance[model]["top1"] for model in ("logreg", "gbdt", "baseline")}
    assert tops <= {"f1", "f4", "f9", "f16", "f25", "f36"}  # the columns that carry signal
    with open(project / "plots/drift.csv", newline="") as handle:
        assert {row["column"] for row in csv.DictReader(handle)} >= set(FEATURES)
    assert (project / "plots/images/feature_pair.png").stat().st_size > 10_000


def test_predict_scores_the_table_and_carries_its_id(project: Path, tmp_path: Path) -> None:
    new = example_table(300, fraud_rate=0.03, seed=9, categorical=True)
    source = tmp_path / "new.csv"
    new.to_csv(source, index=False)  # merchant, an entity, is accepted and not read
    scores = tmp_path / "scores.csv"
    done = fraud_predict(project, str(source), "-o", str(scores))
    assert done.returncode == 0, done.stderr
    with open(scores, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["txn_id", "probability", "flagged", "label"]
    assert [row["txn_id"] for row in rows] == list(new["txn_id"])
    assert {row["label"] for row in rows} == {"0", "1"}  # legit / fraud, as 0 / 1


def test_an_undeclared_column_is_one_line_naming_it(project: Path, tmp_path: Path) -> None:
    extra = example_table(50, seed=3, categorical=True).assign(device="phone")
    source = tmp_path / "extra.csv"
    extra.to_csv(source, index=False)
    done = fraud_predict(project, str(source))
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "'device'" in lines[0] and "'merchant'" not in lines[0]


def test_levels_come_from_the_training_split_alone(project: Path) -> None:
    spec = json.loads((project / "data/scaled/fit/scaler.json").read_text())
    assert spec["inputs"] == FEATURES
    assert spec["categorical"] == [{"column": "channel", "levels": list(CHANNELS)},
                                   {"column": "country", "levels": list(COUNTRIES)}]
    test = pd.read_parquet(project / "data/split/test.parquet")
    assert LATE_COUNTRY in set(test["country"])  # in test, never a level
    features = np.load(project / "data/scaled/test/test_features.npy")
    assert features.shape[1] == len(FEATURES) + len(CHANNELS) + len(COUNTRIES)
    late = (test["country"] == LATE_COUNTRY).to_numpy()
    assert (features[late, -len(COUNTRIES):] == 0).all()  # unseen: none of the known ones


def test_the_gbdt_detector_takes_text_and_matches_scikit_learn_on_test(project: Path) -> None:
    stats = read_scaler(project / "data/scaled/fit/scaler.json", 5.0)
    model = _scikit.load_model(project / "models/gbdt.skops", "train_gbdt")
    assert model.is_categorical_.tolist() == [False] * len(FEATURES) + [True, True]
    test = pd.read_parquet(project / "data/split/test.parquet")
    session = ort.InferenceSession(str(project / "models/detector/gbdt.onnx"),
                                   providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == [INPUT_NAME, CATEGORY_INPUT]
    (ours,) = session.run(None, {
        INPUT_NAME: test[FEATURES].to_numpy(np.float64),
        CATEGORY_INPUT: test[CATEGORICAL].to_numpy(dtype=object)})
    features = np.load(project / "data/scaled/test/test_features.npy")
    expected = model.predict_proba(stats.codes(features))[:, 1]
    np.testing.assert_allclose(ours[:, 0], expected, rtol=1e-9, atol=1e-12)


def test_the_card_importance_and_reasons_name_each_categorical_column_once(
        project: Path, tmp_path: Path) -> None:
    card = json.loads((project / "models/fraud_detector.json").read_text())
    assert card["input_columns"] == FEATURES
    assert card["categorical"]["columns"] == [{"column": "channel", "levels": list(CHANNELS)},
                                              {"column": "country", "levels": list(COUNTRIES)}]
    for table in (project / "plots/importance").glob("*.csv"):
        names = [row.split(",")[0] for row in table.read_text().splitlines()[1:]]
        assert set(CATEGORICAL) <= set(names), table  # one row each, no one-hot columns
        assert not any("=" in name for name in names)
    rows = example_table(300, fraud_rate=0.2, seed=9, categorical=True)
    rows.loc[:4, "country"] = [LATE_COUNTRY, "", "商户", "x" * 5_000, "NA"]
    rows.loc[5, "channel"] = "app"
    csv_in = tmp_path / "rows.csv"
    rows.drop(columns=["label"]).to_csv(csv_in, index=False)
    done = fraud_predict(project, str(csv_in), "--explain", "2", "--explain-all",
                         "-o", str(tmp_path / "scores.csv"))
    assert done.returncode == 0, done.stderr
    scores = pd.read_csv(tmp_path / "scores.csv", keep_default_na=False)
    assert len(scores) == 300 and scores["probability"].between(0, 1).all()
    reasons = set(scores["reason_1"]) | set(scores["reason_2"])
    assert reasons <= {*FEATURES, *CATEGORICAL}


def test_drift_covers_the_categorical_columns_over_their_levels(project: Path) -> None:
    """The test period holds a country training never saw (about half of its last 5 % of
    rows): the monitor's PSI for `country` counts it in the unseen bin."""
    card = json.loads((project / "models/fraud_detector.json").read_text())
    reference = card["monitoring_reference"]["columns"]
    assert reference["country"]["levels"] == list(COUNTRIES)
    assert reference["country"]["counts"][-1] == 0  # nothing unseen in training
    drift = pd.read_csv(project / "plots/drift.csv").set_index("column")
    assert {"channel", "country"} <= set(drift.index)
    assert drift.loc["country", "psi"] > drift.loc["channel", "psi"]
