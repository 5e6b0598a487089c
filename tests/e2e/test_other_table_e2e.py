"""End to end on a table that is not the Credit Card Fraud one, from params alone
(tools/example_table.py): label `label` (words), ISO 8601 time `ts`, 40 numeric columns
`f0`…`f39`, an id, an entity, no amount, and two categorical columns, `channel` and `country`
(`country` has a level only in the test period). `dvc repro` runs every stage, a time split
included, learns the levels on the training split, trains every model on them (gbdt with
native categorical splits), evaluates, ranks and ships a detector that takes the text;
`fraud predict` scores a CSV of those columns, carrying the id through, and `--explain`
explains raw rows, unseen and hostile text included.

The same project adds a sixth model the way docs/pipeline.md says a user does: one module
(a toy kind, scikit-learn's LinearDiscriminantAnalysis), its params section and a few lines
of dvc.yaml, with no edit to any library module. It trains, is evaluated, explained,
chosen (train.strategy names it) and shipped, and `fraud predict` scores with it.

One project for all of it (a whole `dvc repro` costs about a minute of the suite): the
categorical columns are drawn after everything else, so the numeric ones are those of the
plain table; the table's change and the model's are separate commits, each checked to touch
only what it should.
"""

from __future__ import annotations

import csv
import difflib
import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest

from fraud.kinds import _scikit
from fraud.serving.contract import CATEGORY_INPUT, INPUT_NAME, read_scaler
from tests.synthetic_project import dvc, edit_params, fraud_predict, new_project, sh
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

# The whole of the new kind: the module lda.py of the temporary project's kinds package.
LDA_MODULE = '''"""Linear discriminant analysis: a linear logit, so MatMul + Add in ONNX
and the closed-form explanation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .base import SCIKIT, Checks, Fit, LogitGraph, ModelKind, Split, linear_graph


@dataclass(frozen=True)
class LdaParams:
    tol: float


def parse(raw: dict[str, Any], p: Checks) -> LdaParams:
    section = p.section(raw, "lda", LdaParams)
    result = LdaParams(tol=p.as_float("lda.tol", section["tol"]))
    p.require("lda.tol", section["tol"], result.tol > 0, "a number > 0")
    return result


def fit(train: Split, val: Split, params: LdaParams, seed: int) -> Fit:
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    from . import _scikit

    train, val = _scikit.check_pair(train, val)
    model = LinearDiscriminantAnalysis(tol=params.tol).fit(*train)
    return Fit(model, {"model": "lda", "val_ap": _scikit.val_ap(model, val)})


def fitted_problem(model: Any) -> str | None:
    from ._scikit import finite_floats

    return (finite_floats("coef_", model.coef_, (1, model.n_features_in_))
            or finite_floats("intercept_", model.intercept_, (1,)))


def logit_graph(model: Any, n_features: int) -> LogitGraph:
    return linear_graph("lda", model.coef_, model.intercept_, n_features)


KINDS = (ModelKind(
    name="lda", train_stage="train_lda", color="#56B4E9", order=60, family=SCIKIT,
    explanation="linear", section="lda", parse=parse, fit=fit,
    estimator=("sklearn.discriminant_analysis", "LinearDiscriminantAnalysis"),
    trusted=frozenset({("sklearn.discriminant_analysis", "LinearDiscriminantAnalysis",
                        "ObjectNode")}),
    fitted_problem=fitted_problem, logit_graph=logit_graph),)
'''

LDA = "models/detector/lda.onnx"
TRAIN_STAGE = """
  train_lda:
    <<: *peer_train
    vars:
      - peer: lda
"""


def add_lda(dvc_yaml: str) -> tuple[str, int]:
    """dvc.yaml with the lda stage and lda in every model list; and how many lines changed."""
    before = dvc_yaml.splitlines()
    text = dvc_yaml.replace("oversample,logreg,gbdt", "oversample,logreg,gbdt,lda")
    gbdt = "models/detector/gbdt.onnx"
    text = text.replace(f"--model gbdt={gbdt}", f"--model gbdt={gbdt} --model lda={LDA}")
    text = text.replace(f"      - {gbdt}\n", f"      - {gbdt}\n      - {LDA}\n")
    text = text.replace("\n  evaluate_model:", TRAIN_STAGE + "\n  evaluate_model:", 1)
    added = [line for line in difflib.unified_diff(before, text.splitlines(), lineterm="", n=0)
             if line.startswith("+") and not line.startswith("+++")]
    return text, len(added)


def commit(repo: Path, message: str) -> list[str]:
    """Commits everything; returns the paths the commit changed."""
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-q", "-m", message)
    return sorted(sh(repo, "git", "diff", "--name-only", "HEAD~1", "HEAD").stdout.split())


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The project: its data: section declaring the example table (one commit), then the
    sixth model (another), after one `dvc repro`; with what each commit changed."""
    root = tmp_path_factory.mktemp("other-table")
    table = root / "transactions.csv"
    example_table(6_000, fraud_rate=0.03, seed=1, categorical=True).to_csv(table, index=False)
    repo = root / "repo"
    repo.mkdir()
    new_project(repo)

    def declare(params: dict) -> None:
        params["download"].update(url=str(table), sha256=None)
        params["data"] = {**CATEGORICAL_DECLARATION, "max_levels": 20}
        params["split"]["method"] = "time"

    edit_params(repo, declare)
    table_commit = commit(repo, "another table, from params alone")
    (repo / "src/fraud/kinds/lda.py").write_text(LDA_MODULE)
    text, changed = add_lda((repo / "dvc.yaml").read_text())
    (repo / "dvc.yaml").write_text(text)

    def add_model(params: dict) -> None:
        params["lda"] = {"tol": 1e-4}
        params["train"]["strategy"] = "lda"

    edit_params(repo, add_model)
    model_commit = commit(repo, "a sixth model: lda")
    dvc(repo, "repro")
    return {"repo": repo, "table_commit": table_commit, "model_commit": model_commit,
            "dvc_yaml_lines": changed}


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def test_every_stage_ran_and_the_card_names_the_declared_columns(project: dict) -> None:
    repo = project["repo"]
    card = read_json(repo / "models/fraud_detector.json")
    assert card["input_columns"] == FEATURES
    assert card["data"] == {"label": "label", "positive": "fraud", "negative": "legit",
                            "time": "ts", "ids": ["txn_id"], "entities": ["merchant"]}
    one_hot = [f"{column}={level}" for column, levels in (("channel", CHANNELS),
               ("country", COUNTRIES)) for level in levels]
    # no amount: nothing logged; the categorical columns one-hot after the numeric ones
    assert card["standardisation"]["features"] == [*FEATURES, *one_hot]
    assert card["preprocessing"][0] == "features = [f0, ..., country=PT, country=UK]"
    data = read_json(repo / "metrics/data.json")
    assert data["rows"] == 6_000 and "amount_zero_rows" not in data
    summary = read_json(repo / "metrics/evaluate.json")
    assert 0.5 < summary["auc"] <= 1.0  # six of the columns carry a real signal
    # Card Precision@k with merchant, the first entity, as the card; over the test days.
    assert summary["card_precision_low"] <= summary["card_precision"] \
        <= summary["card_precision_high"] <= 1.0
    assert summary["card_precision_days"] >= 5 and "val_card_precision" in summary


def test_reports_use_the_declared_names(project: dict) -> None:
    repo = project["repo"]
    importance = read_json(repo / "metrics/importance.json")
    tops = {importance[model]["top1"] for model in ("logreg", "gbdt", "baseline")}
    assert tops <= {"f1", "f4", "f9", "f16", "f25", "f36"}  # the columns that carry signal
    with open(repo / "plots/drift.csv", newline="") as handle:
        assert {row["column"] for row in csv.DictReader(handle)} >= set(FEATURES)
    assert (repo / "plots/images/feature_pair.png").stat().st_size > 10_000


def test_predict_scores_the_table_and_carries_its_id(project: dict, tmp_path: Path) -> None:
    repo = project["repo"]
    new = example_table(300, fraud_rate=0.03, seed=9, categorical=True)
    source = tmp_path / "new.csv"
    new.to_csv(source, index=False)  # merchant, an entity, is accepted and not read
    scores = tmp_path / "scores.csv"
    done = fraud_predict(repo, str(source), "-o", str(scores))
    assert done.returncode == 0, done.stderr
    with open(scores, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["txn_id", "probability", "flagged", "label"]
    assert [row["txn_id"] for row in rows] == list(new["txn_id"])
    assert {row["label"] for row in rows} == {"0", "1"}  # legit / fraud, as 0 / 1


def test_an_undeclared_column_is_one_line_naming_it(project: dict, tmp_path: Path) -> None:
    repo = project["repo"]
    extra = example_table(50, seed=3, categorical=True).assign(device="phone")
    source = tmp_path / "extra.csv"
    extra.to_csv(source, index=False)
    done = fraud_predict(repo, str(source))
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "'device'" in lines[0] and "'merchant'" not in lines[0]


def test_levels_come_from_the_training_split_alone(project: dict) -> None:
    repo = project["repo"]
    spec = json.loads((repo / "data/scaled/fit/scaler.json").read_text())
    assert spec["inputs"] == FEATURES
    assert spec["categorical"] == [{"column": "channel", "levels": list(CHANNELS)},
                                   {"column": "country", "levels": list(COUNTRIES)}]
    test = pd.read_parquet(repo / "data/split/test.parquet")
    assert LATE_COUNTRY in set(test["country"])  # in test, never a level
    features = np.load(repo / "data/scaled/test/test_features.npy")
    assert features.shape[1] == len(FEATURES) + len(CHANNELS) + len(COUNTRIES)
    late = (test["country"] == LATE_COUNTRY).to_numpy()
    assert (features[late, -len(COUNTRIES):] == 0).all()  # unseen: none of the known ones


def test_the_gbdt_detector_takes_text_and_matches_scikit_learn_on_test(project: dict) -> None:
    repo = project["repo"]
    stats = read_scaler(repo / "data/scaled/fit/scaler.json", 5.0)
    model = _scikit.load_model(repo / "models/gbdt.skops", "train_gbdt")
    assert model.is_categorical_.tolist() == [False] * len(FEATURES) + [True, True]
    test = pd.read_parquet(repo / "data/split/test.parquet")
    session = ort.InferenceSession(str(repo / "models/detector/gbdt.onnx"),
                                   providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == [INPUT_NAME, CATEGORY_INPUT]
    (ours,) = session.run(None, {
        INPUT_NAME: test[FEATURES].to_numpy(np.float64),
        CATEGORY_INPUT: test[CATEGORICAL].to_numpy(dtype=object)})
    features = np.load(repo / "data/scaled/test/test_features.npy")
    expected = model.predict_proba(stats.codes(features))[:, 1]
    np.testing.assert_allclose(ours[:, 0], expected, rtol=1e-9, atol=1e-12)


def test_the_card_importance_and_reasons_name_each_categorical_column_once(
        project: dict, tmp_path: Path) -> None:
    repo = project["repo"]
    card = json.loads((repo / "models/fraud_detector.json").read_text())
    assert card["input_columns"] == FEATURES
    assert card["categorical"]["columns"] == [{"column": "channel", "levels": list(CHANNELS)},
                                              {"column": "country", "levels": list(COUNTRIES)}]
    for table in (repo / "plots/importance").glob("*.csv"):
        names = [row.split(",")[0] for row in table.read_text().splitlines()[1:]]
        assert set(CATEGORICAL) <= set(names), table  # one row each, no one-hot columns
        assert not any("=" in name for name in names)
    rows = example_table(300, fraud_rate=0.2, seed=9, categorical=True)
    rows.loc[:4, "country"] = [LATE_COUNTRY, "", "商户", "x" * 5_000, "NA"]
    rows.loc[5, "channel"] = "app"
    csv_in = tmp_path / "rows.csv"
    rows.drop(columns=["label"]).to_csv(csv_in, index=False)
    done = fraud_predict(repo, str(csv_in), "--explain", "2", "--explain-all",
                         "-o", str(tmp_path / "scores.csv"))
    assert done.returncode == 0, done.stderr
    scores = pd.read_csv(tmp_path / "scores.csv", keep_default_na=False)
    assert len(scores) == 300 and scores["probability"].between(0, 1).all()
    reasons = set(scores["reason_1"]) | set(scores["reason_2"])
    assert reasons <= {*FEATURES, *CATEGORICAL}


def test_drift_covers_the_categorical_columns_over_their_levels(project: dict) -> None:
    """The test period holds a country training never saw (about half of its last 5 % of
    rows): the monitor's PSI for `country` counts it in the unseen bin."""
    repo = project["repo"]
    card = json.loads((repo / "models/fraud_detector.json").read_text())
    reference = card["monitoring_reference"]["columns"]
    assert reference["country"]["levels"] == list(COUNTRIES)
    assert reference["country"]["counts"][-1] == 0  # nothing unseen in training
    drift = pd.read_csv(repo / "plots/drift.csv").set_index("column")
    assert {"channel", "country"} <= set(drift.index)
    assert drift.loc["country", "psi"] > drift.loc["channel", "psi"]


def test_the_table_took_params_alone_and_the_model_one_module(project: dict) -> None:
    assert project["table_commit"] == ["params.yaml"]
    assert project["model_commit"] == ["dvc.yaml", "params.yaml", "src/fraud/kinds/lda.py"]
    assert project["dvc_yaml_lines"] <= 15  # the stage, and lda in the lists: a few lines


def test_evaluate_chose_the_new_model_and_export_shipped_it(project: dict) -> None:
    repo = project["repo"]
    assert read_json(repo / "metrics/evaluate.json")["model"] == "lda"
    assert read_json(repo / "metrics/val/lda.json")["model"] == "lda"
    assert read_json(repo / "models/fraud_detector.json")["model"] == "lda"
    assert "lda" in read_json(repo / "metrics/importance.json")
