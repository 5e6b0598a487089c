"""End to end on a table that is not the Credit Card Fraud one, from params alone: label
`label` (words), ISO 8601 time `ts`, 40 numeric columns `f0`…`f39`, an id, an entity and no
amount (tools/example_table.py). `dvc repro` runs every stage, a time split included, and
`fraud predict` scores a CSV of those columns, carrying the id through."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.synthetic_project import fraud_predict, project_with_params
from tools.example_table import DECLARATION, FEATURES, example_table

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project, its data: section declaring the example table, after one `dvc repro`."""
    root = tmp_path_factory.mktemp("other-table")
    table = root / "transactions.csv"
    example_table(6_000, fraud_rate=0.03, seed=1).to_csv(table, index=False)

    def declare(params: dict) -> None:
        params["download"].update(url=str(table), sha256=None)
        params["data"] = DECLARATION
        params["split"]["method"] = "time"

    return project_with_params(root / "repo", declare)


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def test_every_stage_ran_and_the_card_names_the_declared_columns(project: Path) -> None:
    card = read_json(project / "models/fraud_detector.json")
    assert card["input_columns"] == FEATURES
    assert card["data"] == {"label": "label", "positive": "fraud", "negative": "legit",
                            "time": "ts", "ids": ["txn_id"], "entities": ["merchant"]}
    assert card["standardisation"]["features"] == FEATURES  # no amount: nothing logged
    assert card["preprocessing"][0] == "features = [f0, ..., f38, f39]"
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
    new = example_table(300, fraud_rate=0.03, seed=9)
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
    extra = example_table(50, seed=3).assign(channel="web")
    source = tmp_path / "extra.csv"
    extra.to_csv(source, index=False)
    done = fraud_predict(project, str(source))
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "'channel'" in lines[0] and "'merchant'" not in lines[0]
