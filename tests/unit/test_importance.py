"""Global importance (src/fraud/evaluation/importance.py): the closed form for logistic
regression, the seeded sample of rows, the table round trip and its bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from fraud.errors import PipelineError
from fraud.evaluation import importance
from fraud.serving.contract import ScalerStats, save_onnx
from fraud.serving.explain import Preprocess
from fraud.serving.peer_onnx import peer_detector
from tests.credit_card import INPUT_COLUMNS, N_FEATURES

CLIP, EPS = 5.0, 0.001


@pytest.fixture(scope="module")
def logreg(tmp_path_factory: pytest.TempPathFactory) -> dict:
    rng = np.random.default_rng(11)
    scaler = ScalerStats(mean=rng.normal(0, 0.5, N_FEATURES),
                         scale=rng.uniform(0.5, 2, N_FEATURES), clip=CLIP)
    raw = np.concatenate([rng.normal(0, 2, (2_500, N_FEATURES - 1)),
                          rng.lognormal(3, 1.5, (2_500, 1))], axis=1)
    features = Preprocess(scaler.mean, scaler.scale, CLIP, EPS, True).features(raw)
    labels = (features[:, 2] - features[:, 7] + rng.normal(0, 1, len(raw)) > 2.6).astype(int)
    model = LogisticRegression(max_iter=1000).fit(features, labels)
    path = tmp_path_factory.mktemp("importance") / "logreg.onnx"
    save_onnx(peer_detector(model, scaler, EPS), path)
    return {"raw": raw, "labels": labels, "features": features, "model": model, "path": path}


def test_logistic_regression_importance_is_the_closed_form(logreg: dict) -> None:
    """Mean |coef_j × z_j| over the frauds and over the sampled rows, and the shares."""
    labels = logreg["labels"]
    rows, is_fraud, in_sample = importance.explained_rows(labels, 400, seed=5)
    explainer = importance.load_detector_explainer(logreg["path"], "train_logreg")
    got = importance.model_importance(explainer, logreg["raw"][rows], is_fraud, in_sample)
    terms = np.abs(logreg["model"].coef_[0] * logreg["features"][rows])
    np.testing.assert_allclose(got["frauds"], terms[is_fraud].mean(axis=0), rtol=0, atol=1e-6)
    np.testing.assert_allclose(got["all"], terms[in_sample].mean(axis=0), rtol=0, atol=1e-6)
    table = importance.table_rows(got)
    assert [row["feature"] for row in table] == INPUT_COLUMNS
    shares = np.array([row["share_frauds"] for row in table])
    assert shares.sum() == pytest.approx(1.0)
    assert importance.top(table, "frauds", 2)[0]["feature"] in {"V3", "V8"}  # the signal


def test_every_fraud_and_a_seeded_sample_are_explained() -> None:
    labels = np.zeros(10_000, dtype=int)
    labels[::97] = 1
    rows, is_fraud, in_sample = importance.explained_rows(labels, 500, seed=3)
    again = importance.explained_rows(labels, 500, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip((rows, is_fraud, in_sample), again,
                                                    strict=True))
    assert not np.array_equal(rows, importance.explained_rows(labels, 500, seed=4)[0])
    assert is_fraud.sum() == labels.sum() and in_sample.sum() == 500
    assert (np.diff(rows) > 0).all() and (labels[rows][is_fraud] == 1).all()
    small = importance.explained_rows(labels[:100], 500, seed=3)
    assert small[2].all() and len(small[0]) == 100  # fewer rows than the sample: all


def test_metrics_keep_the_top_three_over_the_frauds(logreg: dict) -> None:
    rng = np.random.default_rng(0)
    means = {"frauds": rng.uniform(size=len(INPUT_COLUMNS)),
             "all": rng.uniform(size=len(INPUT_COLUMNS))}
    means["frauds"][[4, 9, 1]] = [30.0, 20.0, 10.0]
    tables = {"logreg": importance.table_rows(means)}
    metrics = importance.metrics(tables, frauds=7, sampled=40)
    entry = metrics["logreg"]
    assert [entry[f"top{i}"] for i in (1, 2, 3)] == ["V5", "V10", "V2"]
    assert entry["top1_share"] == pytest.approx(30 / means["frauds"].sum())
    assert len(entry) == 2 * importance.METRIC_FEATURES
    assert (metrics["rows_frauds"], metrics["rows_sample"]) == (7, 40)


def test_the_table_round_trips_and_feeds_the_card(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    table = importance.table_rows({s: rng.uniform(size=len(INPUT_COLUMNS))
                                   for s in importance.SUBSETS})
    path = tmp_path / "gbdt.csv"
    path.write_text(importance.table_csv(table))
    again = importance.read_table(path, "importance")
    assert again == table
    card = importance.card_entry(again, "plots/importance/gbdt.csv")
    assert [item["feature"] for item in card["test_frauds"]] == \
        [row["feature"] for row in importance.top(table, "frauds", importance.CARD_FEATURES)]


@pytest.mark.parametrize(("content", "message"), [
    ("feature,share\nV1,1\n", "expected the columns feature, share_frauds"),
    ("feature,share_frauds,share_all,mean_abs_frauds,mean_abs_all\nV1,0.5,0.5,1,1\n",
     "expected one row per input column"),
    (None, "line 4, column 'share_all': 'x' is not a number >= 0"),
    (None, "line 4, column 'share_all': '-0.1' is not a number >= 0"),
    (b"\xff\xfe", "not a readable CSV"),
], ids=["columns", "rows", "text", "negative", "binary"])
def test_a_bad_table_is_one_line_naming_the_stage(content: str | bytes | None, message: str,
                                                  tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    if content is None:
        table = importance.table_rows({s: np.ones(len(INPUT_COLUMNS))
                                       for s in importance.SUBSETS})
        lines = importance.table_csv(table).splitlines()
        cells = lines[3].split(",")
        cells[2] = "x" if "'x'" in message else "-0.1"
        lines[3] = ",".join(cells)
        path.write_text("\n".join(lines) + "\n")
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(PipelineError, match="run the importance stage again") as error:
        importance.read_table(path, "importance")
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_missing_or_corrupt_detector_names_its_stage(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="run the train_gbdt stage first"):
        importance.load_detector_explainer(tmp_path / "gbdt.onnx", "train_gbdt")
    (tmp_path / "gbdt.onnx").write_bytes(b"not a model")
    with pytest.raises(PipelineError, match="run the train_gbdt stage again"):
        importance.load_detector_explainer(tmp_path / "gbdt.onnx", "train_gbdt")
