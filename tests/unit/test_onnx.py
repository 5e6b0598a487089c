"""ONNX: parity with Keras, reproducible files, scoring without TensorFlow, clear errors.

The network is trained briefly on generated data of the real shape (src/fraud/data/synthetic.py),
then written as the train stage writes it (detector.save_all). Parity is checked on 50,000
generated rows plus edge rows, through the pipeline's own arithmetic (clean → scale).
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from fraud.commands.predict import keras_probabilities
from fraud.core.files import file_sha256, write_json
from fraud.core.params import ModelParams
from fraud.data.prepare import (
    clean,
    features_and_labels,
    fit_scaler,
    read_raw_csv,
    scale,
    scaler_to_json,
)
from fraud.data.synthetic import generate_creditcard, write_creditcard_csv
from fraud.errors import PipelineError
from fraud.serving import contract, preprocess_graph
from fraud.serving import detector as detectors
from fraud.serving.onnx_contract import DETECTOR, NETWORK
from fraud.serving.onnx_scoring import BATCH_ROWS, load_onnx
from fraud.training import network as keras_model
from tests.conftest import HEAVY_IMPORTS_PROBE, NO_HEAVY_IMPORTS
from tests.credit_card import FEATURES, INPUT_COLUMNS, N_FEATURES

REPO = Path(__file__).resolve().parents[2]
EPS, CLIP, SEED = 0.001, 5.0, 11
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONDONTWRITEBYTECODE": "1"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("onnx")
    train = generate_creditcard(6000, 0.02, SEED)
    features, labels = features_and_labels(clean(train, EPS))
    scaler = fit_scaler(features)
    write_json(root / "scaler.json", scaler_to_json(scaler, CLIP))
    stats = contract.read_scaler(root / "scaler.json", CLIP)
    keras_model.set_determinism(SEED)
    network = keras_model.make_model(N_FEATURES, ModelParams(hidden_units=16, dropout=0.5,
                                                                learning_rate=1e-2),
                                     output_bias=keras_model.careful_bias(labels))
    network.fit(scale(features, scaler, CLIP), labels.reshape(-1, 1), epochs=3, batch_size=512,
                verbose=0)
    paths = {"network_onnx_path": root / "baseline.onnx",
             "detector_path": root / "detector.keras",
             "detector_onnx_path": root / "detector.onnx"}
    detectors.save_all(network, "baseline", stats, EPS, **paths)
    raw = generate_creditcard(50_000, 0.002, SEED + 1)
    edges = raw.iloc[:4].copy()
    edges["Amount"] = [0.0, 0.01, 1e7, 25691.16]
    edges["V1"] = [-1e3, 1e3, 0.0, -56.4]
    raw = pd.concat([raw, edges], ignore_index=True)
    return {"root": root, "network": network, "stats": stats, "scaler": scaler, "raw": raw,
            "inputs": raw[INPUT_COLUMNS].to_numpy(np.float64),
            "features": scale(clean(raw, EPS)[FEATURES].to_numpy(np.float64), scaler, CLIP),
            **paths}


def test_network_parity(trained: dict[str, Any]) -> None:
    """ONNX vs Keras on the scaled features: what evaluate scores."""
    features = trained["features"]
    got = load_onnx(trained["network_onnx_path"], "train", NETWORK)(features)
    assert got.dtype == np.float64 and got.shape == (len(features),)
    for expected in (keras_model.predict_proba(trained["network"], features, 8192),
                     np.asarray(trained["network"](features, training=False))[:, 0]):
        assert np.abs(got - expected).max() <= 1e-6


def test_detector_parity(trained: dict[str, Any]) -> None:
    """ONNX detector vs Keras detector on raw rows, and vs the pipeline's path."""
    inputs = trained["inputs"]
    got = load_onnx(trained["detector_onnx_path"], "train", DETECTOR)(inputs)
    keras_detector = keras_model.keras.saving.load_model(trained["detector_path"])
    assert np.abs(got - keras_probabilities(keras_detector, inputs)).max() <= 1e-6
    pipeline = keras_model.predict_proba(trained["network"], trained["features"], 8192)
    assert np.abs(got - pipeline).max() <= 1e-6
    # Preprocessing in float64 ONNX ops: the features come out as the pipeline's, so the
    # detector scores exactly what the network scores on them.
    network = load_onnx(trained["network_onnx_path"], "train", NETWORK)
    np.testing.assert_array_equal(got, network(trained["features"]))


def test_either_contract_by_the_input_name(trained: dict[str, Any]) -> None:
    """evaluate_model's files: a network (scaled features) or a detector (raw rows), told
    apart by the input's name; either scores as it does under its own contract."""
    network = load_onnx(trained["network_onnx_path"], "train", None)
    detector = load_onnx(trained["detector_onnx_path"], "train", None)
    assert network.input_name == NETWORK.input_name
    assert detector.input_name == DETECTOR.input_name
    np.testing.assert_array_equal(network(trained["features"]), detector(trained["inputs"]))


def test_batches_do_not_change_the_scores(trained: dict[str, Any]) -> None:
    inputs = np.concatenate([trained["inputs"]] * 3)  # 150,012 rows: three batches
    assert len(inputs) > 2 * BATCH_ROWS
    model = load_onnx(trained["detector_onnx_path"], "train", DETECTOR)
    whole = model(inputs)
    np.testing.assert_array_equal(whole[:len(trained["inputs"])], model(trained["inputs"]))
    assert model(inputs[:0]).shape == (0,)


def test_conversion_is_reproducible(trained: dict[str, Any], tmp_path: Path) -> None:
    """Converted again after other models were built in this process: the same bytes (names,
    symbolic dimensions and documentation no longer carry process-wide counters)."""
    keras_model.make_model(N_FEATURES,
                           ModelParams(hidden_units=4, dropout=0.0, learning_rate=1e-3))
    paths = {name: tmp_path / path.name for name, path in trained.items()
             if name.endswith("_path")}
    loaded = keras_model.load_model(trained["detector_path"].parent / "detector.keras", "train")
    assert loaded.name == "fraud_detector"
    detectors.save_all(trained["network"], "baseline", trained["stats"], EPS, **paths)
    for name, path in paths.items():
        assert path.read_bytes() == trained[name].read_bytes(), name


def test_files_are_plain_and_named(trained: dict[str, Any]) -> None:
    import onnx

    for name, input_name in (("network_onnx_path", "features"),
                             ("detector_onnx_path", "transaction")):
        model = onnx.load(trained[name])
        onnx.checker.check_model(model, full_check=True)
        assert [i.name for i in model.graph.input] == [input_name]
        assert [o.name for o in model.graph.output] == ["probability"]
        assert {o.version for o in model.opset_import if o.domain in ("", "ai.onnx")} == \
            {preprocess_graph.OPSET}
        assert not any(t.data_location == onnx.TensorProto.EXTERNAL
                       for t in model.graph.initializer)
        names = [node.name for node in model.graph.node]
        assert len(set(names)) == len(names) and not any("_1/" in n for n in names), names
    detector = onnx.load(trained["detector_onnx_path"])
    ops = [node.op_type for node in detector.graph.node]
    assert ops[:9] == ["Slice", "Slice", "Add", "Log", "Concat", "Sub", "Div", "Clip", "Cast"]


# --- errors -------------------------------------------------------------------------------

@pytest.mark.parametrize("content", [b"", b"not an onnx model at all", b"\x08\x07" * 50,
                                     b"<!DOCTYPE html><html>404</html>"])
def test_corrupt_file_is_one_line_naming_the_stage(content: bytes, tmp_path: Path) -> None:
    path = tmp_path / "baseline.onnx"
    path.write_bytes(content)
    with pytest.raises(PipelineError) as error:
        load_onnx(path, "train_baseline", DETECTOR)
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{path}: not a loadable ONNX model")
    assert message.endswith("run the train_baseline stage again")


def test_truncated_file(trained: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "cut.onnx"
    path.write_bytes(trained["detector_onnx_path"].read_bytes()[:-40])
    with pytest.raises(PipelineError, match="not a loadable ONNX model"):
        load_onnx(path, "train_baseline", DETECTOR)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="model not found; run the train_weighted stage"):
        load_onnx(tmp_path / "weighted.onnx", "train_weighted", NETWORK)


def test_wrong_width(trained: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"expected a \(rows, 29\) array"):
        load_onnx(trained["network_onnx_path"], "train", NETWORK)(np.zeros((3, 30)))


# --- no TensorFlow where nothing trains ----------------------------------------------------

# Modules that score or ship models and must start fast. The evaluate stages join this list
# when they score with onnxruntime.
NO_TENSORFLOW = ["fraud.serving.onnx_scoring", "fraud.serving.export",
                 "fraud.serving.contract", "src.stages.export",
                 "src.predict"]


@pytest.mark.parametrize("module", NO_TENSORFLOW)
def test_imports_no_tensorflow(module: str) -> None:
    done = subprocess.run([sys.executable, "-c", (f"import sys, {module}; print(sorted(m for m "
                           "in ('tensorflow', 'keras', 'tf2onnx') if m in sys.modules))")],
                          cwd=REPO, env=ENV, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.fixture(scope="module")
def shipped(trained: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The detector as export ships it (with the card of its .onnx) and as .keras, and a
    CSV of the generated rows."""
    root = tmp_path_factory.mktemp("shipped")
    plain = root / "transactions.csv"
    write_creditcard_csv(trained["raw"], plain)
    csv = root / "transactions.csv.gz"
    csv.write_bytes(gzip.compress(plain.read_bytes()))
    inputs = read_raw_csv(plain)[INPUT_COLUMNS].to_numpy(np.float64)
    expected = load_onnx(trained["detector_onnx_path"], "train", DETECTOR)(inputs)
    threshold = float(np.float32(np.quantile(expected, 0.99)))
    models = {}
    for fmt, source in (("onnx", "detector_onnx_path"), ("keras", "detector_path")):
        models[fmt] = root / f"fraud_detector.{fmt}"
        models[fmt].write_bytes(trained[source].read_bytes())
    # The card of the .onnx (a .keras detector is uncalibrated: no card applies to it)
    write_json(root / "fraud_detector.json", {
        "threshold": threshold, "input_columns": INPUT_COLUMNS,
        "files": {"onnx": {"file": models["onnx"].name,
                           "sha256": file_sha256(models["onnx"])}}})
    return {"models": models, "csv": csv, "expected": expected, "threshold": threshold}


def test_predict_scores_the_onnx_model_without_tensorflow(shipped: dict[str, Any],
                                                         tmp_path: Path) -> None:
    out = tmp_path / "scores.csv"
    done = subprocess.run([sys.executable, "-c", HEAVY_IMPORTS_PROBE, "src.predict",
                           str(shipped["models"]["onnx"]), str(shipped["csv"]), "-o", str(out)],
                          cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1] == NO_HEAVY_IMPORTS and len(lines) == 2, done.stderr
    scores = pd.read_csv(out)
    assert len(scores) == len(shipped["expected"])
    np.testing.assert_allclose(scores["probability"], shipped["expected"], rtol=0, atol=1e-6)
    flagged = scores["probability"].to_numpy(np.float32) >= np.float32(shipped["threshold"])
    np.testing.assert_array_equal(scores["flagged"], flagged.astype(int))


def test_predict_onnx_and_keras_agree(shipped: dict[str, Any], tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    from fraud.commands.predict import run

    scores = {}
    for fmt, model in shipped["models"].items():  # a .keras detector takes no card's rule
        run([str(model), str(shipped["csv"]), "-o", str(tmp_path / f"{fmt}.csv"), "-q",
             "--threshold", repr(shipped["threshold"])])
        scores[fmt] = pd.read_csv(tmp_path / f"{fmt}.csv")
    assert capsys.readouterr().err == ""
    np.testing.assert_allclose(scores["onnx"]["probability"], scores["keras"]["probability"],
                               rtol=0, atol=1e-6)
    assert (scores["onnx"]["flagged"] != scores["keras"]["flagged"]).sum() <= 1  # ties only


def predict_error(capsys: pytest.CaptureFixture[str], *args: object) -> str:
    from fraud.commands.predict import run

    with pytest.raises(SystemExit) as info:
        run([str(a) for a in args])
    assert info.value.code == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def test_predict_corrupt_onnx_is_one_line(shipped: dict[str, Any], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "fraud_detector.onnx"
    model.write_bytes(shipped["models"]["onnx"].read_bytes()[:500])
    line = predict_error(capsys, model, shipped["csv"], "--threshold", "0.5")
    assert line.startswith(f"error: {model}: not a loadable ONNX model")
    assert line.endswith("run the export stage again")
    assert not (tmp_path / "scores.csv").exists()


def test_predict_rejects_the_bare_network(trained: dict[str, Any], shipped: dict[str, Any],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    line = predict_error(capsys, trained["network_onnx_path"], shipped["csv"],
                         "--threshold", "0.5")
    assert "not an exported fraud model" in line and "models/fraud_detector.onnx" in line


def test_the_network_detector_carries_categorical_columns_in_keras_and_onnx(
        tmp_path: Path) -> None:
    """The `.keras` detector (StringLookup) and the ONNX one (OneHotEncoder) encode text as
    the scale stage does, unseen and hostile text included, and score alike."""
    import onnxruntime as ort

    from fraud.serving.explain import Preprocess
    from tests.unit.test_declaration import HOSTILE_TEXT

    categories = (("mcc", ("food", "fuel", "é")), ("channel", ("0", "1")))
    stats = contract.ScalerStats(mean=np.array([0.0, 1.0]), scale=np.array([1.0, 2.0]),
                                 clip=5.0, inputs=("x", "amt"), log_input="amt",
                                 categories=categories)
    text = np.array([["food", "1"], ["é", "0"], ["zz", ""],
                     *([h, h] for h in HOSTILE_TEXT)], dtype=object)
    raw = np.abs(np.random.default_rng(0).normal(size=(len(text), 2)))
    expected = Preprocess.of(stats, 1e-3).features(raw, text).astype(np.float32)
    keras = keras_model.keras
    np.testing.assert_array_equal(
        np.asarray(detectors.build_preprocess(stats, 1e-3)([raw, text.astype(str)])), expected)
    network = keras_model.make_model(len(stats.features), ModelParams(
        hidden_units=4, dropout=0.0, learning_rate=1e-3))
    for layer in network.layers:  # non-zero biases: tf2onnx drops an Add of zeros
        if getattr(layer, "bias", None) is not None:
            layer.bias.assign(np.full(layer.bias.shape, 0.1, dtype=np.float32))
    paths = {name: tmp_path / f"{name}.{suffix}" for name, suffix in (
        ("network_onnx_path", "onnx"), ("detector_path", "keras"),
        ("detector_onnx_path", "onnx"))}
    paths["detector_onnx_path"] = tmp_path / "detector.onnx"
    detectors.save_all(network, "baseline", stats, 1e-3, **paths)
    loaded = keras.saving.load_model(paths["detector_path"], safe_mode=True)
    session = ort.InferenceSession(str(paths["detector_onnx_path"]),
                                   providers=["CPUExecutionProvider"])
    (onnx_scores,) = session.run(None, {contract.INPUT_NAME: raw,
                                        contract.CATEGORY_INPUT: text})
    keras_scores = np.asarray(loaded([raw, text.astype(str)]))
    np.testing.assert_allclose(onnx_scores, keras_scores, rtol=1e-5, atol=1e-7)
    # --explain: one integrated-gradients reason per raw column, adding up to the logit.
    from fraud.serving.explain import load_explainer

    rows = np.empty((len(raw), 4), dtype=object)
    rows[:, :2], rows[:, 2:] = raw, text
    np.testing.assert_allclose(keras_probabilities(loaded, rows), keras_scores[:, 0])
    attributions = load_explainer(paths["detector_onnx_path"])(rows)
    assert attributions.contributions.shape == (len(raw), 4)
    logit = np.log(onnx_scores[:, 0] / (1 - onnx_scores[:, 0]))
    np.testing.assert_allclose(attributions.base + attributions.contributions.sum(axis=1),
                               logit, atol=1e-4)
