"""The export stage: ships the model evaluate chose as one calibrated `.onnx`, with a card.

One module fixture builds a small project on generated data with the library functions (the
pipeline path: read_raw_csv → clean → split → fit the scaler on train → scale → a briefly
trained network and a small gbdt → the train stages' detectors → calibrators fitted on the
validation logits, as evaluate_model writes them), then runs the export stage once as DVC
runs it, recording whether it imported TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pandas as pd
import pytest

from fraud.commands.predict import keras_probabilities
from fraud.core.decision import EXPECTED_COST
from fraud.core.files import write_json
from fraud.core.params import ModelParams, SplitParams, load_params
from fraud.data.prepare import (
    clean,
    features_and_labels,
    fit_scaler,
    read_raw_csv,
    scale,
    scaler_to_json,
    split,
)
from fraud.data.synthetic import generate_creditcard, write_creditcard_csv
from fraud.evaluation import importance
from fraud.evaluation.calibration import Calibrator, fit_calibrator
from fraud.monitoring.profile import (
    CARD_KEY,
    build_reference,
    model_reference_json,
    reference_from_card,
)
from fraud.serving import contract, preprocess_graph
from fraud.serving import detector as detectors
from fraud.serving.calibrated import with_logit_output
from fraud.serving.export import shipped_decision, shipped_scorer
from fraud.serving.onnx_contract import DETECTOR, NETWORK
from fraud.serving.onnx_scoring import load_onnx
from fraud.serving.peer_onnx import peer_detector
from fraud.training import network as keras_model
from tests.conftest import HEAVY_IMPORTS_PROBE, NO_HEAVY_IMPORTS
from tests.credit_card import FEATURES, INPUT_COLUMNS, N_FEATURES, PREPROCESS_NAME, V_COLUMNS

REPO = Path(__file__).resolve().parents[2]
ROWS, RATE, SEED = 4000, 0.02, 7
EPS, CLIP = 0.001, 5.0
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONDONTWRITEBYTECODE": "1"}
METRICS = {"accuracy": 0.99, "auc": 0.93, "prc": 0.61, "precision": 0.7, "recall": 0.55,
           "threshold": 0.3725, "tp": 11, "fp": 5, "tn": 780, "fn": 9, "loss": 0.05,
           "val_prc": 0.66, "val_recall": 0.6}
CHOICE = {"model": "baseline", "chosen_by": "train.strategy", "select_by": "val_prc", **METRICS}
# What evaluate_model adds to metrics/<model>.json about calibration (a few of its keys).
CALIBRATION_METRICS = {"calibration": "platt", "loss": 0.004, "loss_raw": 0.05, "ece": 0.0004,
                       "expected_frauds": 9.5, "frauds": 10, "val_loss": 0.0041,
                       "val_expected_frauds": 8.7, "val_frauds": 9}
@dataclass
class Project:
    root: Path
    raw_csv: Path
    raw: pd.DataFrame             # read_raw_csv of raw_csv: the pipeline's own reading
    scaler: Any                   # fitted on the training split
    network_path: Path
    gbdt: Any                     # the fitted HistGradientBoostingClassifier
    calibrators: dict[str, Calibrator]
    paths: dict[str, Path]        # the export stage's arguments
    stage: subprocess.CompletedProcess
    seconds: float


def export_args(paths: dict[str, Path]) -> list[str]:
    return ["--choice", str(paths["choice"]), "--onnx", str(paths["onnx"]),
            "--calibration", str(paths["calibration"]), "--metrics", str(paths["metrics"]),
            "--raw", str(paths["raw"]), "--reference", str(paths["reference"]),
            "--importance", str(paths["importance"]), "--out-onnx", str(paths["out_onnx"]),
            "--card", str(paths["card"])]


def write_references_and_importance(root: Path, train: pd.DataFrame,
                                    test: pd.DataFrame) -> None:
    """What the reference and importance stages write, for the two detectors."""
    raw, labels = test[INPUT_COLUMNS].to_numpy(np.float64), test["Class"].to_numpy()
    rows, is_fraud, in_sample = importance.explained_rows(labels, 300, SEED)
    features = train[INPUT_COLUMNS].to_numpy(np.float64)
    for name in ("baseline", "gbdt"):
        detector = root / f"models/detector/{name}.onnx"
        score, built_from = shipped_scorer(name, detector,
                                           root / f"models/calibration/{name}.json")
        write_json(root / f"models/reference/{name}.json", model_reference_json(
            build_reference(features, score(features)), built_from))
        explainer = importance.load_detector_explainer(detector, "train")
        table = importance.table_rows(importance.model_importance(
            explainer, raw[rows], is_fraud, in_sample))
        (root / f"plots/importance/{name}.csv").write_text(importance.table_csv(table))


def run_without_tf(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", HEAVY_IMPORTS_PROBE, module, *args], cwd=REPO,
                          env=ENV, capture_output=True, text=True, timeout=300)


def network_logits(path: Path, features: np.ndarray) -> np.ndarray:
    """The network's own logit (its final Sigmoid taken off), float32 as it computes it."""
    import onnxruntime as ort

    session = ort.InferenceSession(with_logit_output(onnx.load(path)).SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    return session.run(None, {"features": features})[0][:, 0].astype(np.float64)


def write_calibrators(root: Path, network: Path, gbdt: Any, val_x: np.ndarray,
                      val_y: np.ndarray) -> dict[str, Calibrator]:
    """As evaluate_model writes them: Calibrator.to_dict() and the model's name."""
    calibrators = {"baseline": fit_calibrator("platt", network_logits(network, val_x), val_y),
                   "gbdt": fit_calibrator("isotonic", gbdt.decision_function(val_x), val_y)}
    for name, calibrator in calibrators.items():
        write_json(root / f"models/calibration/{name}.json",
                   {**calibrator.to_dict(), "model": name})
        write_json(root / f"metrics/{name}.json", {**METRICS, **CALIBRATION_METRICS,
                                                  "calibration": calibrator.method})
    return calibrators


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    from sklearn.ensemble import HistGradientBoostingClassifier

    root = tmp_path_factory.mktemp("export")
    for folder in ("data/raw", "data/scaled", "models/detector", "models/calibration",
                   "models/reference", "plots/importance", "metrics"):
        (root / folder).mkdir(parents=True)
    raw_csv = root / "data/raw/creditcard.csv"
    write_creditcard_csv(generate_creditcard(ROWS, RATE, SEED), raw_csv)
    raw = read_raw_csv(raw_csv)
    splits = split(clean(raw, EPS),
                  SplitParams("stratified", True, 0.2, 0.2), SEED)
    train_x, train_y = features_and_labels(splits.train)
    val_x, val_y = features_and_labels(splits.val)
    scaler = fit_scaler(train_x)
    write_json(root / "data/scaled/scaler.json", scaler_to_json(scaler, CLIP))
    keras_model.set_determinism(SEED)
    network = keras_model.make_model(N_FEATURES, ModelParams(hidden_units=8, dropout=0.5,
                                                                learning_rate=1e-2),
                                     output_bias=keras_model.careful_bias(train_y))
    network.fit(scale(train_x, scaler, CLIP), train_y.reshape(-1, 1), epochs=3, batch_size=256,
                verbose=0)
    network_path = root / "models/baseline.keras"
    keras_model.save_model(network, network_path)
    # What the train stages write (src/stages/train.py, src/stages/train_peer.py).
    stats = contract.read_scaler(root / "data/scaled/scaler.json", CLIP)
    detectors.save_all(network, "baseline", stats, EPS,
                       network_onnx_path=root / "models/baseline.onnx",
                       detector_path=root / "models/detector/baseline.keras",
                       detector_onnx_path=root / "models/detector/baseline.onnx")
    gbdt = HistGradientBoostingClassifier(max_iter=30, max_leaf_nodes=7, early_stopping=False,
                                          random_state=0).fit(scale(train_x, scaler, CLIP),
                                                              train_y)
    contract.save_onnx(peer_detector(gbdt, stats, EPS), root / "models/detector/gbdt.onnx")
    calibrators = write_calibrators(root, root / "models/baseline.onnx", gbdt,
                                    scale(val_x, scaler, CLIP), val_y)
    write_json(root / "metrics/evaluate.json", CHOICE)
    write_references_and_importance(root, splits.train, splits.test)
    paths = {"choice": root / "metrics/evaluate.json",
             "onnx": root / "models/detector/{model}.onnx",
             "calibration": root / "models/calibration/{model}.json",
             "metrics": root / "metrics/{model}.json", "raw": raw_csv,
             "reference": root / "models/reference/{model}.json",
             "importance": root / "plots/importance/{model}.csv",
             "out_onnx": root / "models/fraud_detector.onnx",
             "card": root / "models/fraud_detector.json"}
    started = time.perf_counter()
    stage = run_without_tf("src.stages.export", *export_args(paths))
    return Project(root=root, raw_csv=raw_csv, raw=raw, scaler=scaler, network_path=network_path,
                   gbdt=gbdt, calibrators=calibrators, paths=paths, stage=stage,
                   seconds=time.perf_counter() - started)


@pytest.fixture(scope="module")
def detector(project: Project) -> Any:
    """The train stage's Keras detector (uncalibrated; predict still scores one)."""
    assert project.stage.returncode == 0, project.stage.stderr
    # safe_mode=True by default
    return keras_model.keras.saving.load_model(project.root / "models/detector/baseline.keras")


def pipeline_features(project: Project, raw: pd.DataFrame) -> np.ndarray:
    """What the pipeline makes of raw rows: clean → scale with the fitted scaler."""
    return scale(clean(raw, EPS)[FEATURES].to_numpy(np.float64), project.scaler, CLIP)


def pipeline_probabilities(project: Project, raw: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """What the pipeline computes for raw rows: the features, then the trained network (as
    evaluate scores, uncalibrated). Returns (features, probabilities)."""
    features = pipeline_features(project, raw)
    network = keras_model.load_model(project.network_path, "train_baseline")
    return features, keras_model.predict_proba(network, features, 8192)


def edge_rows(raw: pd.DataFrame) -> pd.DataFrame:
    """Rows the clipping and the log must handle: zero and huge amounts, extreme V values."""
    rows = raw.iloc[:4].copy()
    rows["Amount"] = [0.0, 0.01, 1e7, 25691.16]
    rows["V1"] = [-1e3, 1e3, 0.0, -56.4]
    rows["V28"] = [0.0, -40.0, 40.0, 1e-9]
    return pd.concat([raw, rows], ignore_index=True)


def test_stage_succeeds_quietly_without_tensorflow(project: Project) -> None:
    assert project.stage.returncode == 0, project.stage.stderr
    assert "Traceback" not in project.stage.stderr
    assert NO_HEAVY_IMPORTS in project.stage.stderr, project.stage.stderr
    for name in ("out_onnx", "card"):
        assert project.paths[name].is_file(), name
    assert not (project.root / "models/fraud_detector.keras").exists()  # ONNX only now
    assert project.seconds < 30  # a few seconds at most even on a loaded machine; TF alone ~5


def test_ships_the_calibrated_network(project: Project) -> None:
    """The shipped file = the network's logit on the pipeline's features, then the numpy
    calibrator (float64), for raw rows; the calibrator rides along as metadata."""
    raw = edge_rows(project.raw)
    inputs = raw[INPUT_COLUMNS].to_numpy(np.float64)
    shipped = load_onnx(project.paths["out_onnx"], "export", DETECTOR)
    logits = network_logits(project.root / "models/baseline.onnx",
                            pipeline_features(project, raw))
    expected = project.calibrators["baseline"](logits)
    np.testing.assert_allclose(shipped(inputs), expected, rtol=1e-12, atol=0)
    assert Calibrator.from_dict(json.loads(shipped.metadata["calibration"])) \
        == project.calibrators["baseline"]
    assert shipped.metadata["strategy"] == "baseline"


def test_the_train_stage_detectors_match_the_pipeline_path(project: Project,
                                                          detector: Any) -> None:
    """The uncalibrated detectors export builds on: Keras and ONNX score the network."""
    raw = edge_rows(project.raw)
    features, expected = pipeline_probabilities(project, raw)
    inputs = raw[INPUT_COLUMNS].to_numpy(np.float64)
    source = load_onnx(project.root / "models/detector/baseline.onnx", "train_baseline",
                       DETECTOR)
    for got in (keras_probabilities(detector, inputs), source(inputs)):
        assert got.shape == expected.shape == (len(raw),)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    # The ONNX detector on raw rows scores what the ONNX network scores on the pipeline's
    # features (what evaluate scores).
    network = load_onnx(project.root / "models/baseline.onnx", "train_baseline", NETWORK)
    np.testing.assert_allclose(source(inputs), network(features), rtol=0, atol=1e-6)
    # The Keras preprocessing alone: the features the network was trained on.
    computed = np.asarray(detector.get_layer(PREPROCESS_NAME)(inputs))
    assert computed.dtype == np.float32
    np.testing.assert_allclose(computed, features, rtol=0, atol=1e-6)
    assert np.abs(computed).max() == CLIP  # the edge rows were clipped


def test_input_is_raw_columns_in_order_and_the_output_float64(project: Project,
                                                              detector: Any) -> None:
    assert [*V_COLUMNS, "Amount"] == INPUT_COLUMNS
    (tensor,) = detector.inputs
    assert tuple(tensor.shape) == (None, 29) and tensor.dtype == "float64"
    assert [layer.name for layer in detector.layers] == \
        ["transaction", "preprocess", "hidden", "dropout", "output"]
    onnx_model = load_onnx(project.paths["out_onnx"], "export", DETECTOR)
    (given,) = onnx_model.session.get_inputs()
    (output,) = onnx_model.session.get_outputs()
    assert (given.name, given.type, given.shape) == ("transaction", "tensor(double)", ["rows", 29])
    assert (output.name, output.type, output.shape) == ("probability", "tensor(double)",
                                                        ["rows", 1])


def _walk(node: Any) -> Any:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def test_keras_graph_uses_only_built_in_keras_objects(project: Project) -> None:
    with zipfile.ZipFile(project.root / "models/detector/baseline.keras") as archive:
        config = json.loads(archive.read("config.json"))
    modules = {node["module"] for node in _walk(config) if "module" in node}
    classes = {node["class_name"] for node in _walk(config) if "class_name" in node}
    assert modules and all(m == "keras" or m.startswith("keras.") for m in modules), modules
    assert "Lambda" not in classes and "TFOpLambda" not in classes, classes
    assert {"Log", "Subtract", "Divide", "Clip", "Cast"} <= classes, classes
    assert not any(str(node.get("registered_name", "")).startswith("Custom>")
                   for node in _walk(config))


# As the card's usage says: onnxruntime alone (no TensorFlow, no project code).
FRESH_ONNX = """
import json, sys
import numpy as np
import onnxruntime as ort
session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
x = np.load(sys.argv[2], allow_pickle=False)
p = session.run(["probability"], {"transaction": x.astype("float64")})[0][:, 0]
assert p.dtype == np.float64
np.save(sys.argv[3], p)
print(json.dumps(sorted(m for m in sys.modules if m in ("src", "tensorflow", "keras")
                        or m.startswith("src."))))
"""


def test_loads_in_a_fresh_process_without_project_code(project: Project, tmp_path: Path) -> None:
    inputs = project.raw[INPUT_COLUMNS].to_numpy(np.float64)
    np.save(tmp_path / "x.npy", inputs)
    # -I: isolated (no PYTHONPATH, no user site, the script's folder not on sys.path); the
    # working folder holds no project code either.
    done = subprocess.run([sys.executable, "-I", "-c", FRESH_ONNX, str(project.paths["out_onnx"]),
                           str(tmp_path / "x.npy"), str(tmp_path / "p.npy")],
                          cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
    shipped = load_onnx(project.paths["out_onnx"], "export", DETECTOR)
    np.testing.assert_array_equal(np.load(tmp_path / "p.npy"), shipped(inputs))


def test_card(project: Project) -> None:
    card = json.loads(project.paths["card"].read_text(encoding="utf-8"))
    assert card["model"] == "baseline" and card["chosen_by"] == "train.strategy"
    assert card["threshold"] == METRICS["threshold"]
    assert card["decision"] == {"rule": "threshold", "threshold": METRICS["threshold"],
                                "flag_when": "probability >= threshold"}
    assert card["test_metrics"] == {k: v for k, v in METRICS.items() if not k.startswith("val_")}
    assert card["validation_metrics"] == {"val_prc": 0.66, "val_recall": 0.6}
    assert card["training_data"] == {
        "file": str(project.raw_csv),
        "sha256": hashlib.sha256(project.raw_csv.read_bytes()).hexdigest()}
    assert set(card["files"]) == {"onnx"}
    entry, shipped = card["files"]["onnx"], project.paths["out_onnx"]
    assert entry["file"] == shipped.name
    assert entry["sha256"] == hashlib.sha256(shipped.read_bytes()).hexdigest()
    sources = {"detector": project.root / "models/detector/baseline.onnx",
               "calibration": project.root / "models/calibration/baseline.json"}
    assert entry["built_from"] == {
        name: {"file": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
        for name, path in sources.items()}
    assert "onnxruntime" in entry["load"] and entry["predict"]
    calibration = card["calibration"]
    assert calibration["method"] == "platt"
    assert calibration["parameters"] == project.calibrators["baseline"].to_dict()
    assert calibration["test"] == {"loss": 0.004, "loss_raw": 0.05, "ece": 0.0004,
                                   "expected_frauds": 9.5, "frauds": 10}
    assert calibration["validation"] == {"val_loss": 0.0041, "val_expected_frauds": 8.7,
                                         "val_frauds": 9}
    assert card["input_columns"] == [*V_COLUMNS, "Amount"]
    assert card["input_name"] == "transaction" and card["input_dtype"] == "float64"
    assert card["output_name"] == "probability" and card["output_dtype"] == "float64"
    assert card["eps"] == EPS and card["clip"] == CLIP
    assert card["standardisation"]["features"] == FEATURES
    assert card["standardisation"]["mean"] == [float(v) for v in project.scaler.mean_]
    assert card["standardisation"]["scale"] == [float(v) for v in project.scaler.scale_]
    assert card["versions"]["tensorflow"] == keras_model.tf.__version__
    assert card["versions"]["onnx_opset"] == str(preprocess_graph.OPSET)
    assert {"input", "decide", "command_line", "onnx_other_languages"} <= set(card["usage"])
    assert "fraud_detector.onnx" in card["usage"]["command_line"]
    assert not any("keras" in key for key in card["usage"])


def run_in_process(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    from fraud.core.cli import run
    from src.stages import export as export_stage

    with pytest.raises(SystemExit) as info:
        run(export_stage.main, argv)
    assert info.value.code == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def out_paths(project: Project, folder: Path) -> dict[str, Path]:
    return {**project.paths, "out_onnx": folder / "fraud_detector.onnx",
            "card": folder / "fraud_detector.json"}


def test_export_is_byte_identical(project: Project, tmp_path: Path) -> None:
    """Run again in this process (TensorFlow loaded, other models built): the same bytes."""
    from src.stages import export as export_stage

    paths = out_paths(project, tmp_path)
    export_stage.main(export_args(paths))
    for name in ("out_onnx", "card"):
        assert paths[name].read_bytes() == project.paths[name].read_bytes(), name


def test_ships_gbdt(project: Project, tmp_path: Path) -> None:
    """A peer ships as the networks do: its detector with its calibrator, equal to the
    calibrator on scikit-learn's own logit (the trees are float64 throughout)."""
    from src.stages import export as export_stage

    choice = tmp_path / "evaluate.json"
    write_json(choice, {**CHOICE, "model": "gbdt"})
    paths = {**out_paths(project, tmp_path), "choice": choice}
    export_stage.main(export_args(paths))
    card = json.loads(paths["card"].read_text())
    assert card["model"] == "gbdt" and card["calibration"]["method"] == "isotonic"
    assert "scikit-learn" in card["versions"] and "tensorflow" not in card["versions"]
    inputs = project.raw[INPUT_COLUMNS].to_numpy(np.float64)
    got = load_onnx(paths["out_onnx"], "export", DETECTOR)(inputs)
    logits = project.gbdt.decision_function(pipeline_features(project, project.raw))
    np.testing.assert_allclose(got, project.calibrators["gbdt"](logits), rtol=0, atol=1e-12)
    assert ((got > 0) & (got < 1)).all()


def test_the_strategy_key_is_accepted(project: Project, tmp_path: Path) -> None:
    """evaluate.json from before the per-model evaluate: the name under `strategy`."""
    from src.stages import export as export_stage

    choice = tmp_path / "evaluate.json"
    write_json(choice, {"strategy": "baseline", **METRICS})
    paths = {**out_paths(project, tmp_path), "choice": choice}
    export_stage.main(export_args(paths))
    assert json.loads(paths["card"].read_text())["model"] == "baseline"


@pytest.mark.parametrize(("cost_fn", "threshold"), [("amount", None), (495.0, 0.01)])
def test_an_expected_cost_rule_ships_its_costs(cost_fn: Any, threshold: Any) -> None:
    """evaluate.threshold: expected_cost ships the rule and its costs, not a searched number:
    per row with cost_fn `amount`, else the threshold cost_fp / (cost_fp + cost_fn)."""
    settings = replace(load_params(REPO / "params.yaml").evaluate, threshold=EXPECTED_COST,
                       cost_fp=5.0, cost_fn=cost_fn)
    decision = shipped_decision({"threshold": "n/a"}, settings, "evaluate.json")
    assert decision.to_card()["rule"] == EXPECTED_COST
    assert decision.to_card()["cost_fn"] == cost_fn and decision.cost_fp == 5.0
    assert decision.threshold == threshold


def corrupt(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:100])


def another_models(path: Path) -> None:
    """The gbdt detector where baseline's should be."""
    path.write_bytes((path.parent / "gbdt.onnx").read_bytes())


# id -> (evaluate.json content or None to leave it, (file to spoil, how) or None, fragments)
BAD = {
    "unknown-model": ({"model": "xgboost", **METRICS}, None,
                      ["'xgboost' is not one of", "baseline, weighted, oversample, logreg"]),
    "no-name": (dict(METRICS), None, ["no 'model'", "run the evaluate stage again"]),
    "bad-threshold": ({"model": "baseline", **METRICS, "threshold": 1.5}, None,
                      ["'threshold' between 0 and 1"]),
    "missing-detector": ({"model": "oversample", **METRICS}, None,
                         ["oversample.onnx: model not found; run the train_resampled stage"]),
    "corrupt-onnx": (None, ("detector/baseline.onnx", corrupt),
                     ["not a loadable ONNX model", "run the train_baseline stage again"]),
    "detector-of-another-model": (None, ("detector/baseline.onnx", another_models),
                                  ["the detector of 'gbdt', not of 'baseline'"]),
    "missing-calibration": (None, ("calibration/baseline.json", Path.unlink),
                            ["baseline.json: not found", "evaluate_model"]),
    "calibration-of-another-model": (
        None, ("calibration/baseline.json", lambda path: path.write_bytes(
            (path.parent / "gbdt.json").read_bytes())),
        ["the calibration of 'gbdt', not of 'baseline'", "evaluate_model"]),
}


@pytest.mark.parametrize("case", BAD)
def test_stage_fails_cleanly(case: str, project: Project, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    content, damage, fragments = BAD[case]
    out = tmp_path / "out"
    out.mkdir()
    paths = out_paths(project, out)
    paths["out_onnx"].write_bytes(b"stale")  # an earlier run's output goes first
    if content is not None:
        write_json(tmp_path / "evaluate.json", content)
        paths["choice"] = tmp_path / "evaluate.json"
    if damage is not None:
        where, spoil = damage
        folder = tmp_path / "models"
        for name in ("detector", "calibration"):
            shutil.copytree(project.root / "models" / name, folder / name)
        paths = {**paths, "onnx": folder / "detector/{model}.onnx",
                 "calibration": folder / "calibration/{model}.json"}
        spoil(folder / where)
    line = run_in_process(export_args(paths), capsys)
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    assert list(out.iterdir()) == []


def test_missing_choice(project: Project, tmp_path: Path,
                        capsys: pytest.CaptureFixture[str]) -> None:
    paths = {**out_paths(project, tmp_path), "choice": tmp_path / "metrics/evaluate.json"}
    line = run_in_process(export_args(paths), capsys)
    assert "metrics/evaluate.json: not found; run the evaluate stage first" in line


def test_card_carries_the_reference_of_the_shipped_model(project: Project) -> None:
    """The reference stage's file for the shipped model, now naming the shipped file: what
    src.monitor and the monitor stage read."""
    card = json.loads(project.paths["card"].read_text(encoding="utf-8"))
    reference = reference_from_card(card, "card")
    assert reference.model_sha256 == card["files"]["onnx"]["sha256"]
    stored = json.loads((project.root / "models/reference/baseline.json").read_text())
    assert card[CARD_KEY] == {**{k: v for k, v in stored.items() if k != "built_from"},
                              "model_sha256": reference.model_sha256}
    assert reference.score.counts.sum() == stored["rows"] > 0
    assert len(json.dumps(card[CARD_KEY])) < 10_000  # a few KB


def test_card_names_the_top_features(project: Project) -> None:
    card = json.loads(project.paths["card"].read_text(encoding="utf-8"))
    entry = card["importance"]
    assert entry["source"].endswith("baseline.csv") and "mean |contribution|" in entry["measure"]
    for subset in ("test_frauds", "test_rows"):
        shares = [item["share"] for item in entry[subset]]
        assert len(shares) == importance.CARD_FEATURES
        assert shares == sorted(shares, reverse=True) and 0 < sum(shares) <= 1 + 1e-12
        assert {item["feature"] for item in entry[subset]} <= set(INPUT_COLUMNS)


def _spoiled(project: Project, tmp_path: Path, folder: str, spoil: Any) -> dict[str, Path]:
    copy = tmp_path / folder
    shutil.copytree(project.root / folder, copy)
    spoil(copy)
    key = "reference" if folder == "models/reference" else "importance"
    suffix = ".json" if key == "reference" else ".csv"
    out = tmp_path / "out"
    out.mkdir()
    return {**out_paths(project, out), key: copy / f"{{model}}{suffix}"}


@pytest.mark.parametrize(("folder", "spoil", "fragment"), [
    ("models/reference", lambda d: (d / "baseline.json").write_bytes(
        (d / "gbdt.json").read_bytes()),
     ("built from another detector and calibration than the one shipped; run the "
      "reference stage again")),
    ("models/reference", lambda d: (d / "baseline.json").unlink(),
     "baseline.json: not found; run the reference stage first"),
    ("plots/importance", lambda d: (d / "baseline.csv").unlink(),
     "baseline.csv: file not found; run the importance stage first"),
    ("plots/importance", lambda d: (d / "baseline.csv").write_text("feature,share\nV1,0.5\n"),
     "expected the columns feature, share_frauds"),
], ids=["stale-reference", "missing-reference", "missing-importance", "bad-importance"])
def test_a_stale_or_missing_reference_or_table_is_one_line(
        project: Project, tmp_path: Path, folder: str, spoil: Any, fragment: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    paths = _spoiled(project, tmp_path, folder, spoil)
    line = run_in_process(export_args(paths), capsys)
    assert fragment in line, line
    assert list(paths["out_onnx"].parent.iterdir()) == []
