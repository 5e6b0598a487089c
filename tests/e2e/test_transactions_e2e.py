"""End to end on raw card transactions (`download.url: transactions`, small, with its
categorical merchant category, country and channel), from params alone: the features stage
adds per-card and per-terminal history with a 7-day delay, the time split cuts whole days
with the delay gaps and drops cards with a known fraud, every model trains on the history
features, and `fraud predict --history` scores raw rows with the very features the pipeline
computed for them."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraud.core.declaration import DAY_SECONDS, TRANSACTIONS, HistorySpec
from tests.synthetic_project import env, fraud_predict, project_with_params

pytestmark = pytest.mark.e2e
SPEC = HistorySpec(windows=(1, 7, 30), delay=7, spending=("customer_id",),
                   risk=("terminal_id",), time_flags=True)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    def declare(params: dict) -> None:
        params["download"]["url"] = "transactions"
        params["transactions"].update(customers=400, terminals=800, days=75, categorical=True)
        params["data"] = {"label": "tx_fraud", "time": "tx_datetime",
                          "time_format": "iso8601", "ids": ["transaction_id"],
                          "entities": ["customer_id", "terminal_id"], "amount": "tx_amount",
                          "numeric": [],
                          "categorical": ["merchant_category", "country", "channel"]}
        params["features"].update(windows=list(SPEC.windows), delay=SPEC.delay,
                                  spending=list(SPEC.spending), risk=list(SPEC.risk),
                                  time_flags=True, memory_mb=256)
        params["split"].update(method="time", test_days=7, val_days=7, known_fraud_days=14)

    return project_with_params(tmp_path_factory.mktemp("transactions") / "repo", declare)


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def test_the_models_read_the_history_and_the_split_leaves_the_gaps(project: Path) -> None:
    card = _json(project / "models/fraud_detector.json")
    assert card["input_columns"][:len(SPEC.columns()) + 1] == [*SPEC.columns(), "tx_amount"]
    assert card["data"]["history"]["columns"] == list(SPEC.columns())
    data = _json(project / "metrics/data.json")
    assert data["gap_dropped"] > 0 and data["known_fraud_dropped"] > 0
    test = pd.read_parquet(project / "data/split/test.parquet")
    val = pd.read_parquet(project / "data/split/val.parquet")
    assert test["tx_datetime"].min() - val["tx_datetime"].max() > SPEC.delay * DAY_SECONDS - 1
    summary = _json(project / "metrics/evaluate.json")
    assert summary["auc"] > 0.7  # the history carries the simulated frauds' signal
    importance = _json(project / "metrics/importance.json")
    assert any(importance[m]["top1"] in SPEC.columns() for m in ("logreg", "gbdt", "baseline"))


def test_a_prequential_fold_beyond_the_data_stops_split_with_one_line(project: Path) -> None:
    """`dvc exp run -S split.fold=7` on the 75 days: test, validation and the two 7-day
    gaps leave 47 days before the gap of fold 0's validation, so folds 0 to 6 keep a day of
    training. The split stage refuses fold 7 with the line that says so (the stages before
    it are restored from DVC's run cache, none after it runs)."""
    done = subprocess.run([sys.executable, "-m", "dvc", "exp", "run", "--temp", "-S",
                           "split.fold=7"], cwd=project, env=env(), capture_output=True,
                          text=True)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output[-2000:]
    assert "split.fold = 7: its training window would begin before the data's first day" \
        in output and "this table holds folds 0 to 6 (7 folds)" in output, output[-2000:]
    assert "Traceback" not in output


def test_predict_scores_raw_rows_from_their_history_as_the_pipeline(project: Path,
                                                                     tmp_path: Path) -> None:
    import onnxruntime as ort

    raw = pd.read_csv(project / "data/raw/creditcard.csv", dtype=str)
    seconds = (pd.to_datetime(raw["tx_datetime"], utc=True)
               - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    cut = seconds.quantile(0.9)
    new = (seconds > cut) & (seconds <= cut + 2 * DAY_SECONDS)
    raw[seconds <= cut].to_csv(tmp_path / "history.csv", index=False)
    raw[new].drop(columns=["tx_fraud"]).to_csv(tmp_path / "new.csv", index=False)
    scores = tmp_path / "scores.csv"
    done = fraud_predict(project, str(tmp_path / "new.csv"), "--history",
                         str(tmp_path / "history.csv"), "-o", str(scores))
    assert done.returncode == 0, done.stderr
    assert "new.csv" in done.stderr and "featured" not in done.stderr
    with open(scores, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["transaction_id"] for r in rows] == list(raw.loc[new, "transaction_id"])
    # The pipeline's own features for those rows, through the shipped model.
    table = pd.read_parquet(project / "data/features/table.parquet")
    table = table.set_index(table["transaction_id"].astype(str)).loc[
        raw.loc[new, "transaction_id"]]
    numeric = [*SPEC.columns(), "tx_amount"]
    session = ort.InferenceSession(str(project / "models/fraud_detector.onnx"),
                                   providers=["CPUExecutionProvider"])
    feeds = {session.get_inputs()[0].name: table[numeric].to_numpy(np.float64)}
    if len(session.get_inputs()) > 1:  # the categorical columns, as text
        feeds[session.get_inputs()[1].name] = table[
            ["merchant_category", "country", "channel"]].to_numpy(str)
    expected = session.run(None, feeds)[0][:, 0]
    np.testing.assert_allclose([float(r["probability"]) for r in rows], expected,
                               rtol=1e-6, atol=1e-9)


def test_predict_needs_the_history_and_enough_of_it(project: Path, tmp_path: Path) -> None:
    raw = pd.read_csv(project / "data/raw/creditcard.csv", dtype=str)
    raw.tail(50).drop(columns=["tx_fraud"]).to_csv(tmp_path / "new.csv", index=False)
    raw.tail(500).to_csv(tmp_path / "short.csv", index=False)
    done = fraud_predict(project, str(tmp_path / "new.csv"))
    assert done.returncode == 1
    assert ("reads 14 history features (customer_tx_count_1d, customer_mean_amount_1d, "
            "customer_tx_count_7d, …)") in done.stderr
    assert "pass --history CSV" in done.stderr
    done = fraud_predict(project, str(tmp_path / "new.csv"), "--history",
                         str(tmp_path / "short.csv"))
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1
    assert "short.csv: covers" in done.stderr and "need 37" in done.stderr


def test_monitor_reads_raw_rows_with_their_history(project: Path, tmp_path: Path) -> None:
    """`fraud monitor --history`: the batch is raw transactions, featured as predict features
    them; it counts the rows predict flags, and its drift covers the history columns."""
    raw = pd.read_csv(project / "data/raw/creditcard.csv", dtype=str)
    raw.iloc[:-400].to_csv(tmp_path / "history.csv", index=False)
    raw.iloc[-400:].to_csv(tmp_path / "day.csv", index=False)  # labelled: realised too
    model = "models/fraud_detector.onnx"
    report = tmp_path / "report.json"
    done = subprocess.run([sys.executable, "-m", "fraud", "monitor", model,
                           str(tmp_path / "day.csv"), "--history", str(tmp_path / "history.csv"),
                           "--json", str(report)],
                          cwd=project, env=env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    result = json.loads(report.read_text())
    assert result["rows"] == 400 and "realised" in result
    assert set(SPEC.columns()) <= set(result["columns"])
    scores = tmp_path / "scores.csv"
    done = fraud_predict(project, str(tmp_path / "day.csv"), "--history",
                         str(tmp_path / "history.csv"), "-o", str(scores))
    assert done.returncode == 0, done.stderr
    flagged = pd.read_csv(scores)["flagged"].sum()
    assert result["realised"]["flagged"] == flagged
    done = subprocess.run([sys.executable, "-m", "fraud", "monitor", model,
                           str(tmp_path / "day.csv")],
                          cwd=project, env=env(), capture_output=True, text=True)
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1
    assert "reads 14 history features" in done.stderr and "pass --history CSV" in done.stderr


def test_the_declared_columns_are_the_simulators() -> None:
    assert TRANSACTIONS.ids == ("transaction_id",)
