"""The export stage: the champion network with the preprocessing attached as Keras ops.

One module fixture builds a small project on generated data with the library functions (the
pipeline path: read_raw_csv → clean → split → fit the scaler on train → scale → a briefly
trained network), then runs the export stage once as DVC runs it.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from src.fraud import export as E
from src.fraud import model as M
from src.fraud.params import SplitParams
from src.fraud.data import (clean, features_and_labels, fit_scaler, read_raw_csv, scale,
                            scaler_to_json, split)
from src.fraud.files import json_dumps, write_json
from src.fraud.params import ModelParams
from src.fraud.schema import FEATURES, V_COLUMNS
from src.fraud.synthetic import generate_creditcard, write_creditcard_csv

REPO = Path(__file__).resolve().parents[1]
ROWS, RATE, SEED = 4000, 0.02, 7
EPS, CLIP = 0.001, 5.0
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONDONTWRITEBYTECODE": "1"}
METRICS = {"accuracy": 0.99, "auc": 0.93, "prc": 0.61, "precision": 0.7, "recall": 0.55,
           "threshold": 0.3725, "tp": 11, "fp": 5, "tn": 780, "fn": 9, "loss": 0.05}


@dataclass
class Project:
    root: Path
    raw_csv: Path
    raw: pd.DataFrame             # read_raw_csv of raw_csv: the pipeline's own reading
    scaler: Any                   # fitted on the training split
    network_path: Path
    params: Path
    paths: dict[str, Path]        # the export stage's arguments
    stage: subprocess.CompletedProcess


def export_args(paths: dict[str, Path], params: Path) -> list[str]:
    return ["--model", str(paths["model"]), "--metrics", str(paths["metrics"]),
            "--scaler", str(paths["scaler"]), "--raw", str(paths["raw"]),
            "--out", str(paths["out"]), "--card", str(paths["card"]), "--params", str(params)]


def write_params(path: Path, **dotted: Any) -> Path:
    raw = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    raw["clean"]["eps"], raw["scale"]["clip"], raw["train"]["strategy"] = EPS, CLIP, "baseline"
    for key, value in dotted.items():
        section, name = key.split(".")
        raw[section][name] = value
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    root = tmp_path_factory.mktemp("export")
    for folder in ("data/raw", "data/scaled", "models", "metrics"):
        (root / folder).mkdir(parents=True)
    raw_csv = root / "data/raw/creditcard.csv"
    write_creditcard_csv(generate_creditcard(ROWS, RATE, SEED), raw_csv)
    raw = read_raw_csv(raw_csv)
    splits = split(clean(raw, EPS),
                  SplitParams("stratified", True, 0.2, 0.2), SEED)
    train_x, train_y = features_and_labels(splits.train)
    scaler = fit_scaler(train_x)
    write_json(root / "data/scaled/scaler.json", scaler_to_json(scaler, CLIP))
    M.set_determinism(SEED)
    network = M.make_model(len(FEATURES), ModelParams(hidden_units=8, dropout=0.5,
                                                      learning_rate=1e-2),
                           output_bias=M.careful_bias(train_y))
    network.fit(scale(train_x, scaler, CLIP), train_y.reshape(-1, 1), epochs=3, batch_size=256,
                verbose=0)
    network_path = root / "models/baseline.keras"
    M.save_model(network, network_path)
    write_json(root / "metrics/baseline.json", METRICS)
    params = write_params(root / "params.yaml")
    paths = {"model": root / "models/{strategy}.keras", "metrics": root / "metrics/{strategy}.json",
             "scaler": root / "data/scaled/scaler.json", "raw": raw_csv,
             "out": root / "models/fraud_detector.keras",
             "card": root / "models/fraud_detector.json"}
    stage = subprocess.run([sys.executable, "-m", "src.stages.export",
                            *export_args(paths, params)],
                           cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    return Project(root=root, raw_csv=raw_csv, raw=raw, scaler=scaler,
                   network_path=network_path, params=params, paths=paths, stage=stage)


@pytest.fixture(scope="module")
def detector(project: Project) -> Any:
    assert project.stage.returncode == 0, project.stage.stderr
    return M.keras.saving.load_model(project.paths["out"])  # safe_mode=True by default


def pipeline_probabilities(project: Project, raw: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """What the pipeline computes for raw rows: clean → scale with the fitted scaler →
    the trained network (as evaluate scores). Returns (features, probabilities)."""
    features = scale(clean(raw, EPS)[FEATURES].to_numpy(np.float64), project.scaler, CLIP)
    network = M.load_model(project.network_path, "train_baseline")
    return features, M.predict_proba(network, features, 8192)


def edge_rows(raw: pd.DataFrame) -> pd.DataFrame:
    """Rows the clipping and the log must handle: zero and huge amounts, extreme V values."""
    rows = raw.iloc[:4].copy()
    rows["Amount"] = [0.0, 0.01, 1e7, 25691.16]
    rows["V1"] = [-1e3, 1e3, 0.0, -56.4]
    rows["V28"] = [0.0, -40.0, 40.0, 1e-9]
    return pd.concat([raw, rows], ignore_index=True)


def test_stage_succeeds_quietly(project: Project) -> None:
    assert project.stage.returncode == 0, project.stage.stderr
    assert "Traceback" not in project.stage.stderr
    assert project.paths["out"].is_file() and project.paths["card"].is_file()


def test_exported_model_matches_the_pipeline_path(project: Project, detector: Any) -> None:
    raw = edge_rows(project.raw)
    features, expected = pipeline_probabilities(project, raw)
    inputs = raw[E.INPUT_COLUMNS].to_numpy(np.float64)
    got = E.predict_raw(detector, inputs)
    assert got.shape == expected.shape == (len(raw),)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    # The preprocessing alone: the features the network was trained on.
    computed = np.asarray(detector.get_layer(E.PREPROCESS_NAME)(inputs))
    assert computed.dtype == np.float32
    np.testing.assert_allclose(computed, features, rtol=0, atol=1e-6)
    assert np.abs(computed).max() == CLIP  # the edge rows were clipped
    # Keras' predict casts the input to float32 first: close, not exact (the card says so).
    np.testing.assert_allclose(detector.predict(inputs, batch_size=8192, verbose=0)[:, 0],
                               expected, rtol=0, atol=1e-5)


def test_input_is_raw_columns_in_order(detector: Any) -> None:
    assert E.INPUT_COLUMNS == [*V_COLUMNS, "Amount"]
    (tensor,) = detector.inputs
    assert tuple(tensor.shape) == (None, 29) and tensor.dtype == "float64"
    assert tuple(detector.outputs[0].shape) == (None, 1)
    assert [layer.name for layer in detector.layers] == \
        ["transaction", "preprocess", "hidden", "dropout", "output"]


def _walk(node: Any) -> Any:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def test_graph_uses_only_built_in_keras_objects(project: Project) -> None:
    with zipfile.ZipFile(project.paths["out"]) as archive:
        config = json.loads(archive.read("config.json"))
    modules = {node["module"] for node in _walk(config) if "module" in node}
    classes = {node["class_name"] for node in _walk(config) if "class_name" in node}
    assert modules and all(m == "keras" or m.startswith("keras.") for m in modules), modules
    assert "Lambda" not in classes and "TFOpLambda" not in classes, classes
    assert {"Log", "Subtract", "Divide", "Clip", "Cast"} <= classes, classes
    assert not any(str(node.get("registered_name", "")).startswith("Custom>")
                   for node in _walk(config))


FRESH_PROCESS = """
import json, sys
import numpy as np
import keras
model = keras.saving.load_model(sys.argv[1])
x = np.load(sys.argv[2], allow_pickle=False)
np.save(sys.argv[3], np.asarray(model(x, training=False))[:, 0].astype(np.float64))
print(json.dumps(sorted(m for m in sys.modules if m == "src" or m.startswith("src."))))
"""


def test_loads_in_a_fresh_process_without_project_code(project: Project, detector: Any,
                                                       tmp_path: Path) -> None:
    inputs = project.raw[E.INPUT_COLUMNS].to_numpy(np.float64)
    np.save(tmp_path / "x.npy", inputs)
    # -I: isolated (no PYTHONPATH, no user site, the script's folder not on sys.path); the
    # working folder holds no project code either.
    done = subprocess.run([sys.executable, "-I", "-c", FRESH_PROCESS,
                           str(project.paths["out"]), str(tmp_path / "x.npy"),
                           str(tmp_path / "p.npy")],
                          cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), E.predict_raw(detector, inputs),
                               rtol=0, atol=1e-6)


def test_card(project: Project) -> None:
    card = json.loads(project.paths["card"].read_text(encoding="utf-8"))
    assert card["strategy"] == "baseline"
    assert card["threshold"] == METRICS["threshold"]
    assert card["test_metrics"] == METRICS
    assert card["training_data"] == {
        "file": str(project.raw_csv),
        "sha256": hashlib.sha256(project.raw_csv.read_bytes()).hexdigest()}
    assert card["network"]["sha256"] == hashlib.sha256(project.network_path.read_bytes()).hexdigest()
    assert card["input_columns"] == [*V_COLUMNS, "Amount"]
    assert card["input_dtype"] == "float64"
    assert card["eps"] == EPS and card["clip"] == CLIP
    assert card["standardisation"]["features"] == FEATURES
    assert card["standardisation"]["mean"] == [float(v) for v in project.scaler.mean_]
    assert card["standardisation"]["scale"] == [float(v) for v in project.scaler.scale_]
    assert card["versions"] == {"python": ".".join(map(str, sys.version_info[:3])),
                                "tensorflow": M.tf.__version__, "keras": M.keras.__version__,
                                "numpy": np.__version__}
    assert card["model_file"] == "fraud_detector.keras"
    assert {"load", "predict", "input", "decide", "command_line"} <= set(card["usage"])
    assert "keras.saving.load_model" in card["usage"]["load"]


def test_export_is_byte_identical(project: Project) -> None:
    """Built twice in this process (after other models: Keras' name counters have moved)
    and once by the stage in a fresh process: the same bytes, the same card."""
    network = M.load_model(project.network_path, "train_baseline")
    stats = E.read_scaler(project.paths["scaler"], CLIP)
    built = []
    for attempt in range(2):
        path = project.root / f"again{attempt}.keras"
        M.save_model(E.build_detector(network, stats, EPS), path)
        built.append(path.read_bytes())
    assert built[0] == built[1] == project.paths["out"].read_bytes()
    card = E.model_card(strategy="baseline", threshold=METRICS["threshold"], metrics=METRICS,
                        stats=stats, eps=EPS, raw_csv=project.raw_csv,
                        raw_sha256=E.file_sha256(project.raw_csv),
                        network_path=Path(str(project.paths["model"]).format(strategy="baseline")),
                        network_sha256=E.file_sha256(project.network_path),
                        model_file="fraud_detector.keras")
    assert json_dumps(card) == project.paths["card"].read_text(encoding="utf-8")


def run_in_process(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    from src.stages import export as export_stage
    from src.stages._cli import run

    with pytest.raises(SystemExit) as info:
        run(export_stage.main, argv)
    assert info.value.code == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def test_stage_rejects_a_stale_scaler(project: Project, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    paths = {**project.paths, "out": tmp_path / "m.keras", "card": tmp_path / "m.json"}
    paths["out"].write_bytes(b"stale")  # an earlier run's output goes first
    params = write_params(tmp_path / "params.yaml", **{"scale.clip": 3})
    line = run_in_process(export_args(paths, params), capsys)
    assert "written with clip 5, but scale.clip is 3" in line
    assert list(tmp_path.iterdir()) == [params]


def test_stage_needs_the_strategy_metrics(project: Project, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    paths = {**project.paths, "out": tmp_path / "m.keras", "card": tmp_path / "m.json"}
    params = write_params(tmp_path / "params.yaml", **{"train.strategy": "weighted"})
    line = run_in_process(export_args(paths, params), capsys)
    assert "metrics/weighted.json: not found; run the evaluate stage first" in line
    assert list(tmp_path.iterdir()) == [params]
