"""The reference, importance and monitor stages, each run as DVC runs it, on a small project
built with the library (a split of generated data, a logistic-regression detector and its
calibrator, as the train and evaluate_model stages write them; no TensorFlow), and their
expected failures: exit 1, one `error:` line, no outputs."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from fraud.core.files import file_sha256, write_json
from fraud.core.params import SplitParams
from fraud.data.prepare import clean, features_and_labels, fit_scaler, scale, split, write_table
from fraud.data.synthetic import generate_creditcard
from fraud.evaluation.calibration import fit_calibrator
from fraud.monitoring.profile import CARD_KEY, read_model_reference, reference_to_json
from fraud.monitoring.report import BatchMonitor, flat_metrics
from fraud.serving.contract import ScalerStats, save_onnx
from fraud.serving.export import shipped_model
from fraud.serving.onnx_contract import DETECTOR
from fraud.serving.onnx_scoring import load_onnx
from fraud.serving.peer_onnx import peer_detector
from tests.conftest import REPO, stage_env
from tests.credit_card import INPUT_COLUMNS, LABEL

SEED, CLIP, EPS = 5, 5.0, 0.001


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("monitoring")
    for folder in ("data/split", "models/detector", "models/calibration", "models/reference"):
        (root / folder).mkdir(parents=True)
    splits = split(clean(generate_creditcard(4_000, 0.02, SEED), EPS),
                   SplitParams("stratified", True, 0.25, 0.25), SEED)
    for name in ("train", "val", "test"):
        write_table(root / f"data/split/{name}.parquet", getattr(splits, name))
    train_x, train_y = features_and_labels(splits.train)
    val_x, val_y = features_and_labels(splits.val)
    scaler = fit_scaler(train_x)
    model = LogisticRegression(max_iter=1000).fit(scale(train_x, scaler, CLIP), train_y)
    stats = ScalerStats(mean=scaler.mean_, scale=scaler.scale_, clip=CLIP)
    save_onnx(peer_detector(model, stats, EPS), root / "models/detector/logreg.onnx")
    calibrator = fit_calibrator("platt", model.decision_function(scale(val_x, scaler, CLIP)),
                                val_y)
    write_json(root / "models/calibration/logreg.json",
               {**calibrator.to_dict(), "model": "logreg"})
    return root


def reference_args(root: Path, models: str = "logreg") -> list[Any]:
    return ["--models", models, "--onnx", root / "models/detector/{model}.onnx",
            "--calibration", root / "models/calibration/{model}.json",
            "--train", root / "data/split/train.parquet",
            "--out", root / "models/reference/{model}.json"]


@pytest.fixture(scope="module")
def shipped(project: Path) -> dict[str, Path]:
    """The reference stage's output, and the model and card export would write from it."""
    done = subprocess.run([sys.executable, "-m", "src.stages.reference",
                           *map(str, reference_args(project))], cwd=REPO, env=stage_env(None),
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    detector = project / "models/detector/logreg.onnx"
    calibration = project / "models/calibration/logreg.json"
    model = project / "models/fraud_detector.onnx"
    save_onnx(shipped_model("logreg", detector, calibration)[0], model)
    reference = read_model_reference(project / "models/reference/logreg.json",
                                     {"detector": file_sha256(detector),
                                      "calibration": file_sha256(calibration)}, "reference")
    card = project / "models/fraud_detector.json"
    write_json(card, {"threshold": 0.5, CARD_KEY: reference_to_json(
        replace(reference, model_sha256=file_sha256(model)))})
    return {"model": model, "card": card}


def test_reference_profiles_the_training_rows_with_the_shipped_scores(
        project: Path, shipped: dict[str, Path]) -> None:
    stored = json.loads((project / "models/reference/logreg.json").read_text())
    import pandas as pd

    rows = len(pd.read_parquet(project / "data/split/train.parquet"))
    assert stored["rows"] == rows and sum(stored["score"]["counts"]) == rows
    assert set(stored["columns"]) == set(INPUT_COLUMNS)
    assert stored["built_from"]["detector"] == file_sha256(project
                                                           / "models/detector/logreg.onnx")


def monitor_args(project: Path, shipped: dict[str, Path], out: Path,
                 card: Path | None = None, test: Path | None = None) -> list[Any]:
    return ["--model", shipped["model"], "--card", card or shipped["card"],
            "--test", test or project / "data/split/test.parquet",
            "--metrics", out / "monitor.json", "--drift", out / "drift.csv"]


def test_monitor_reports_the_test_split_as_the_library_does(
        project: Path, shipped: dict[str, Path], tmp_path: Path, run_stage: Any) -> None:
    done = run_stage("monitor", *monitor_args(project, shipped, tmp_path))
    assert done.returncode == 0, done.stderr
    import pandas as pd

    from fraud.monitoring.profile import reference_from_card

    test = pd.read_parquet(project / "data/split/test.parquet")
    raw = test[INPUT_COLUMNS].to_numpy(np.float64)
    card = json.loads(shipped["card"].read_text())
    monitor = BatchMonitor(reference_from_card(card, "card"), 0.5)
    monitor.add(raw, load_onnx(shipped["model"], "export", DETECTOR)(raw),
                test[LABEL].to_numpy(np.float64))
    assert json.loads((tmp_path / "monitor.json").read_text()) == \
        pytest.approx(flat_metrics(monitor.report()))
    drift = (tmp_path / "drift.csv").read_text().splitlines()
    assert drift[0] == "column,psi,band" and len(drift) == 2 + len(INPUT_COLUMNS)


def test_importance_explains_each_model_in_one_process(project: Path, tmp_path: Path,
                                                       run_stage: Any) -> None:
    done = run_stage("importance", "--models", "logreg",
                     "--onnx", project / "models/detector/{model}.onnx",
                     "--test", project / "data/split/test.parquet",
                     "--table", tmp_path / "importance/{model}.csv",
                     "--metrics", tmp_path / "importance.json")
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "importance.json").read_text())
    assert metrics["logreg"]["top1_share"] >= metrics["logreg"]["top3_share"] > 0
    assert (tmp_path / "importance/logreg.csv").read_text().startswith("feature,share_frauds")


def _card_of_another_model(shipped: dict[str, Path], folder: Path) -> Path:
    card = json.loads(shipped["card"].read_text())
    card[CARD_KEY]["model_sha256"] = "0" * 64
    write_json(folder / "card.json", card)
    return folder / "card.json"


def _card_of_1e40_rows(shipped: dict[str, Path], folder: Path) -> Path:
    """A reference of 10^40 training rows, its counts consistent (was an OverflowError)."""
    card = json.loads(shipped["card"].read_text())
    reference = card[CARD_KEY]
    extra, reference["rows"] = 10**40 - reference["rows"], 10**40
    for profile in [*reference["columns"].values(), reference["score"]]:
        profile["counts"][-1] += extra
    (folder / "card.json").write_text(json.dumps(card))
    return folder / "card.json"


def _test_without_labels(project: Path, folder: Path) -> Path:
    import pandas as pd

    table = pd.read_parquet(project / "data/split/test.parquet").drop(columns=[LABEL])
    table.to_parquet(folder / "test.parquet")
    return folder / "test.parquet"


@pytest.mark.parametrize("case", ["card of another model", "card without reference",
                                  "test without Class", "missing card", "rows 10^40"],
                         ids=["other-model", "no-reference", "no-class", "no-card",
                              "rows-1e40"])
def test_monitor_fails_in_one_line_and_writes_nothing(
        case: str, project: Path, shipped: dict[str, Path], tmp_path: Path, run_stage: Any,
        stage_error: Any) -> None:
    out = tmp_path / "out"
    out.mkdir()
    card, test, fragment = None, None, ""
    if case == "card of another model":
        card, fragment = _card_of_another_model(shipped, tmp_path), "built for another model"
    elif case == "card without reference":
        write_json(tmp_path / "card.json", {"threshold": 0.5})
        card, fragment = tmp_path / "card.json", "the model card has no 'monitoring_reference'"
    elif case == "rows 10^40":
        card, fragment = _card_of_1e40_rows(shipped, tmp_path), "'rows' must be a whole number"
    elif case == "test without Class":
        test, fragment = _test_without_labels(project, tmp_path), "missing column(s) 'Class'"
    else:
        card, fragment = tmp_path / "none.json", "run the export stage first"
    (out / "monitor.json").write_text("stale")  # an earlier run's output goes first
    done = run_stage("monitor", *monitor_args(project, shipped, out, card, test))
    stage_error(done, fragment)
    assert list(out.iterdir()) == []


@pytest.mark.parametrize(("stage", "models", "fragment"), [
    ("reference", "logreg,gbdt", "gbdt.onnx: model not found; run the train_gbdt stage"),
    ("reference", "xgboost", "--models: 'xgboost' not among baseline"),
    ("importance", "logreg,gbdt", "gbdt.onnx: model not found; run the train_gbdt stage"),
], ids=["reference-missing-detector", "reference-unknown-model",
        "importance-missing-detector"])
def test_a_missing_detector_is_one_line_naming_its_stage(
        stage: str, models: str, fragment: str, project: Path, tmp_path: Path,
        run_stage: Any, stage_error: Any) -> None:
    if stage == "reference":
        args = reference_args(project, models)
        args[-1] = tmp_path / "reference/{model}.json"
    else:
        args = ["--models", models, "--onnx", project / "models/detector/{model}.onnx",
                "--test", project / "data/split/test.parquet",
                "--table", tmp_path / "importance/{model}.csv",
                "--metrics", tmp_path / "importance.json"]
    stage_error(run_stage(stage, *args), fragment)
    assert not (tmp_path / "reference").exists() or not any((tmp_path / "reference").iterdir())
    assert not (tmp_path / "importance.json").exists()
