"""The init_bias and train stage scripts, run as DVC runs them: `python -m src.stages.X`.

Each subprocess pays ~5 s for importing TensorFlow, so the successful runs are shared
module fixtures and most error cases fail on params.yaml, before TensorFlow is imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from fraud.core.files import file_sha256
from fraud.core.params import MONITORABLE
from tests.conftest import HEAVY_IMPORTS_PROBE, NO_HEAVY_IMPORTS, save_scaled_splits, write_scaler
from tests.credit_card import N_FEATURES

REPO = Path(__file__).resolve().parents[2]
SEED = 42
EPOCHS = 4
COMPARE_EPOCHS = 3
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONHASHSEED": "0"}


def make_split(rows: int, seed: int, rate: float = 0.03) -> tuple[np.ndarray, np.ndarray]:
    """Standard-normal features; frauds are shifted by 2 in the first three features."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(rows) < rate).astype(np.uint8)
    labels[:2] = 1
    features = rng.normal(size=(rows, N_FEATURES)).astype(np.float32)
    features[labels == 1, :3] += 2.0
    return features, labels


def write_params(path: Path, **overrides: dict) -> Path:
    """The repo's params.yaml with tiny values (and `overrides`: {section: {key: value}})."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    raw["seed"] = SEED
    raw["model"].update(hidden_units=8)
    raw["init_bias"].update(compare_epochs=COMPARE_EPOCHS)
    raw["train"].update(epochs=EPOCHS, batch_size=256, patience=10, monitor="val_prc")
    for section, values in overrides.items():
        raw[section].update(values)
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def start_stage(stage: str, *args: str | Path, probed: bool = False) -> subprocess.Popen:
    """`python -m src.stages.STAGE ARGS`; `probed`: through HEAVY_IMPORTS_PROBE, which adds
    a last stderr line naming TensorFlow and Keras if the stage imported them."""
    run = ["-c", HEAVY_IMPORTS_PROBE, f"src.stages.{stage}"] if probed \
        else ["-m", f"src.stages.{stage}"]
    return subprocess.Popen([sys.executable, *run, *map(str, args)],
                            cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def finish(process: subprocess.Popen) -> subprocess.CompletedProcess:
    try:
        stdout, stderr = process.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def run_stage(stage: str, *args: str | Path) -> subprocess.CompletedProcess:
    return finish(start_stage(stage, *args))


def assert_clean_failure(result: subprocess.CompletedProcess, *words: str) -> str:
    """Exit 1, exactly one `error:` line, printed last, and no traceback."""
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("stage_data")
    paths = save_scaled_splits(folder, make_split, {"train": (4_000, 1), "val": (1_500, 2)})
    paths["params"] = write_params(folder / "params.yaml")
    paths["scaler"] = write_scaler(folder / "scaler.json", clip=5.0)
    return paths


def split_args(data: dict[str, Path]) -> list[str | Path]:
    return ["--train-features", data["train_features"], "--train-labels", data["train_labels"],
            "--val-features", data["val_features"], "--val-labels", data["val_labels"]]


def init_bias_args(data, out: dict[str, Path], params: Path | None = None) -> list:
    return [*split_args(data), "--weights-out", out["weights"], "--metrics-out",
            out["metrics"], "--curves-out", out["curves"], "--params", params or data["params"]]


def train_outputs(folder: Path) -> dict[str, Path]:
    return {"model": folder / "model.keras", "onnx": folder / "model.onnx",
            "detector": folder / "detector" / "model.keras",
            "detector_onnx": folder / "detector" / "model.onnx",
            "history": folder / "history.csv", "metrics": folder / "metrics.json"}


def train_args(data, weights: Path, out: dict[str, Path], params: Path | None = None,
               strategy: str = "baseline", **replace: Path) -> list:
    paths = {**data, **replace}
    return ["--strategy", strategy, *split_args(paths), "--initial-weights", weights,
            "--scaler", paths["scaler"], "--model-out", out["model"], "--onnx-out", out["onnx"],
            "--detector-out", out["detector"], "--detector-onnx-out", out["detector_onnx"],
            "--history-out", out["history"],
            "--metrics-out", out["metrics"], "--params", params or data["params"]]


def run_train(*args, **kwargs) -> subprocess.CompletedProcess:
    return run_stage("train", *train_args(*args, **kwargs))


def stale_outputs(folder: Path) -> dict[str, Path]:
    out = train_outputs(folder)
    for path in out.values():
        path.parent.mkdir(exist_ok=True)
        path.write_text("stale output of an earlier run\n")
    return out


def assert_no_outputs(out: dict[str, Path]) -> None:
    left = sorted(p.name for folder in {path.parent for path in out.values()}
                  for p in folder.iterdir() if p.suffix in (".keras", ".onnx", ".csv", ".json"))
    assert left == [], left


@pytest.fixture(scope="module")
def slow_runs(data, tmp_path_factory) -> dict:
    """Every stage run that imports TensorFlow (~5 s each), side by side, and the three failures
    that get past params.yaml (they must fail before that import).

    init_bias runs beside the three failures that get past params.yaml; then the train
    stage runs twice, side by side, from init_bias's weights.
    """
    folder = tmp_path_factory.mktemp("init_bias")
    init = {"weights": folder / "initial.weights.h5", "metrics": folder / "init_bias.json",
            "curves": folder / "bias_curves.csv"}
    failing = {}

    no_pos = tmp_path_factory.mktemp("no_positives")
    labels = no_pos / "train_labels.npy"
    np.save(labels, np.zeros(4_000, dtype=np.uint8))
    failing["no_positives"] = (labels, stale_outputs(no_pos), {"train_labels": labels})

    nan = tmp_path_factory.mktemp("nan_features")
    features = np.load(data["val_features"])
    features[10, 3] = np.nan
    np.save(nan / "val_features.npy", features)
    failing["nan_features"] = (nan / "val_features.npy", stale_outputs(nan),
                               {"val_features": nan / "val_features.npy"})

    missing = tmp_path_factory.mktemp("missing_weights")
    failing["missing_weights"] = (missing / "nowhere" / "initial.weights.h5",
                                  stale_outputs(missing), {})

    init_process = start_stage("init_bias", *init_bias_args(data, init))
    processes = {}
    for name, (bad, out, replace) in failing.items():
        # The weights don't exist yet, but these runs fail before they are read.
        weights = bad if name == "missing_weights" else init["weights"]
        processes[name] = start_stage("train", *train_args(data, weights, out, **replace),
                                      probed=True)
    init_result = finish(init_process)
    assert init_result.returncode == 0, init_result.stderr
    assert "Traceback" not in init_result.stderr

    trained = [train_outputs(tmp_path_factory.mktemp(name)) for name in ("first", "second")]
    train_processes = [start_stage("train", *train_args(data, init["weights"], out))
                       for out in trained]
    for process in train_processes:
        result = finish(process)
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
    return {"init_bias": init, "trained": trained,
            "failures": {name: (finish(process), failing[name][0], failing[name][1])
                         for name, process in processes.items()}}


@pytest.fixture(scope="module")
def init_bias(slow_runs) -> dict[str, Path]:
    return slow_runs["init_bias"]


@pytest.fixture(scope="module")
def trained_twice(slow_runs) -> list[dict[str, Path]]:
    return slow_runs["trained"]


# --- init_bias ------------------------------------------------------------------------------

def test_init_bias_outputs(init_bias, data) -> None:
    assert init_bias["weights"].is_file()
    metrics = json.loads(init_bias["metrics"].read_text())
    assert metrics["initial_loss_careful_bias"] < metrics["initial_loss_zero_bias"]
    assert metrics["initial_loss_zero_bias"] == pytest.approx(np.log(2), abs=0.05)
    labels = np.load(data["train_labels"])
    pos, neg = int(labels.sum()), int(len(labels) - labels.sum())
    assert metrics["initial_bias"] == pytest.approx(np.log(pos / neg), rel=1e-9)
    curves = pd.read_csv(init_bias["curves"])
    assert list(curves.columns) == ["epoch", "zero_bias_loss", "zero_bias_val_loss",
                                    "careful_bias_loss", "careful_bias_val_loss"]
    assert curves["epoch"].tolist() == list(range(1, COMPARE_EPOCHS + 1))
    assert np.isfinite(curves.to_numpy()).all()
    assert metrics["final_val_loss_careful_bias"] == pytest.approx(
        curves["careful_bias_val_loss"].iloc[-1])
    # No temporaries left beside the outputs.
    assert sorted(p.name for p in init_bias["weights"].parent.iterdir()) == sorted(
        p.name for p in init_bias.values())


# --- train: success ------------------------------------------------------------------------

def test_train_outputs(trained_twice) -> None:
    out = trained_twice[0]
    assert all(path.is_file() for path in out.values())
    history = pd.read_csv(out["history"])
    metrics = json.loads(out["metrics"].read_text())
    assert list(history.columns)[0] == "epoch"
    keras_logged = list(MONITORABLE)  # the training loss, then validation figures only
    assert sorted(history.columns[1:]) == sorted(keras_logged)
    assert history["epoch"].tolist() == list(range(1, EPOCHS + 1))
    assert metrics["epochs_run"] == len(history) == EPOCHS  # patience > epochs
    assert metrics["strategy"] == "baseline"
    assert 1 <= metrics["best_epoch"] <= EPOCHS
    assert metrics["best_epoch"] == int(history["val_prc"].idxmax()) + 1
    best = history.loc[history["epoch"] == metrics["best_epoch"]].iloc[0]
    assert set(metrics) == {"strategy", "best_epoch", "epochs_run",
                            *(m for m in keras_logged if m.startswith("val_"))}
    for name in keras_logged:
        if name.startswith("val_"):
            assert metrics[name] == pytest.approx(best[name], rel=1e-9), name
    assert sorted(p.relative_to(out["model"].parent).as_posix()
                  for p in out["model"].parent.rglob("*") if p.is_file()) == sorted(
        p.relative_to(out["model"].parent).as_posix() for p in out.values())


def test_trained_model_loads_and_holds_the_best_weights(trained_twice, data) -> None:
    import keras
    model = keras.saving.load_model(trained_twice[0]["model"], safe_mode=True)
    metrics = json.loads(trained_twice[0]["metrics"].read_text())
    val_x, val_y = np.load(data["val_features"]), np.load(data["val_labels"])
    scores = model.evaluate(val_x, val_y.reshape(-1, 1).astype(np.float32), batch_size=256,
                            verbose=0, return_dict=True)
    assert scores["loss"] == pytest.approx(metrics["val_loss"], rel=1e-5)
    # The PR-AUC recomputed here with a fresh Keras metric over Keras' own predictions.
    prc = keras.metrics.AUC(curve="PR")
    prc.update_state(val_y.reshape(-1, 1), model.predict(val_x, batch_size=256, verbose=0))
    assert float(prc.result()) == pytest.approx(metrics["val_prc"], rel=1e-5)


def test_train_writes_the_network_and_detector_as_onnx(trained_twice, data) -> None:
    """The ONNX twins score like the Keras network (scaled features) and detector (raw
    columns; the scaler here is the identity, so raw = features except Amount, logged)."""
    import keras

    from fraud.serving import contract
    from fraud.serving.onnx_contract import DETECTOR, NETWORK
    from fraud.serving.onnx_scoring import load_onnx

    out = trained_twice[0]
    network = keras.saving.load_model(out["model"], safe_mode=True)
    val_x = np.load(data["val_features"])
    expected = network.predict(val_x, batch_size=4096, verbose=0)[:, 0]
    np.testing.assert_allclose(load_onnx(out["onnx"], "train", NETWORK)(val_x), expected, rtol=0,
                               atol=1e-6)
    raw = val_x.astype(np.float64)
    raw[:, -1] = np.exp(raw[:, -1]) - 0.001  # Amount with log(Amount + eps) = the feature
    raw = raw[raw[:, -1] > 0]
    detector = load_onnx(out["detector_onnx"], "train", DETECTOR)
    keras_detector = keras.saving.load_model(out["detector"], safe_mode=True)
    from fraud.commands.predict import keras_probabilities
    np.testing.assert_allclose(detector(raw), keras_probabilities(keras_detector, raw), rtol=0,
                               atol=1e-6)
    info = contract.read_detector_metadata(detector.metadata, "detector", "train")
    assert info.strategy == "baseline" and info.clip == 5.0 and info.eps == 0.001
    assert info.keras_sha256 == file_sha256(out["detector"])


@pytest.mark.parametrize("output", ["model", "onnx", "detector", "detector_onnx", "history",
                                    "metrics"])
def test_train_is_byte_identical_on_rerun(output: str, trained_twice) -> None:
    first, second = trained_twice
    assert first[output].read_bytes() == second[output].read_bytes()


# --- train: expected failures --------------------------------------------------------------

PARAM_ERRORS = {
    # name: (params overrides, words the error line must contain)
    "batch_size_0": ({"train": {"batch_size": 0}}, ["train.batch_size", ">= 1"]),
    "monitor_bogus": ({"train": {"monitor": "val_bogus"}},
                      ["train.monitor", "'val_bogus'", "val_prc", "val_loss", "val_recall"]),
    "dropout_1": ({"model": {"dropout": 1.0}}, ["model.dropout", "[0, 1)"]),
    "learning_rate_0": ({"model": {"learning_rate": 0}}, ["model.learning_rate", "> 0"]),
    "epochs_0": ({"train": {"epochs": 0}}, ["train.epochs", ">= 1"]),
    "patience_negative": ({"train": {"patience": -1}}, ["train.patience", ">= 0"]),
}


@pytest.mark.parametrize("case", PARAM_ERRORS)
def test_train_bad_params(case: str, data, tmp_path: Path) -> None:
    overrides, words = PARAM_ERRORS[case]
    params = write_params(tmp_path / "params.yaml", **overrides)
    out = stale_outputs(tmp_path)
    # The initial weights are never read: params fail first, so none need to exist.
    result = run_train(data, tmp_path / "initial.weights.h5", out, params=params)
    assert_clean_failure(result, "params.yaml", *words)
    assert_no_outputs(out)


def test_train_stale_scaler(data, tmp_path: Path) -> None:
    """scaler.json written with another clip than scale.clip: fails before training."""
    (tmp_path / "scaled").mkdir()
    scaler = write_scaler(tmp_path / "scaled" / "scaler.json", clip=3.0)
    out = stale_outputs(tmp_path)
    result = run_train(data, tmp_path / "initial.weights.h5", out, scaler=scaler)
    assert_clean_failure(result, str(scaler), "written with clip 3, but scale.clip is 5")
    assert_no_outputs(out)


def test_train_unknown_strategy(data, tmp_path: Path) -> None:
    out = stale_outputs(tmp_path)
    result = run_train(data, tmp_path / "initial.weights.h5", out, strategy="smote")
    assert_clean_failure(result, "--strategy", "'smote'", "baseline")
    assert_no_outputs(out)


def test_init_bias_bad_params_leave_no_outputs(data, tmp_path: Path) -> None:
    params = write_params(tmp_path / "params.yaml", init_bias={"compare_epochs": 0})
    out = [tmp_path / "initial.weights.h5", tmp_path / "init.json", tmp_path / "curves.csv"]
    for path in out:
        path.write_text("stale\n")
    result = run_stage("init_bias", *init_bias_args(
        data, {"weights": out[0], "metrics": out[1], "curves": out[2]}, params))
    assert_clean_failure(result, "init_bias.compare_epochs")
    assert not any(path.exists() for path in out)


SLOW_FAILURES = {
    # name: words the error line must contain, besides the bad file's path
    "no_positives": ["no positive"],
    "nan_features": ["row 10, column 3", "finite"],
    "missing_weights": ["not found", "init_bias"],
}


@pytest.mark.parametrize("case", SLOW_FAILURES)
def test_train_bad_inputs(case: str, slow_runs) -> None:
    """Bad inputs fail before TensorFlow is imported (~5 s): at once, and cheaply."""
    result, bad_file, out = slow_runs["failures"][case]
    *stderr, probe = result.stderr.rstrip("\n").split("\n")
    assert probe == NO_HEAVY_IMPORTS, result.stderr
    result = subprocess.CompletedProcess(result.args, result.returncode, result.stdout,
                                         "\n".join(stderr))
    assert_clean_failure(result, str(bad_file), *SLOW_FAILURES[case])
    assert_no_outputs(out)
