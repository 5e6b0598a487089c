"""Export: what ships (the chosen model's detector, as `.keras` and `.onnx`) and its card.

No TensorFlow here: the detectors are built by the train stages (src/fraud/detector.py),
which have TensorFlow loaded anyway; the export stage only picks the one `evaluate` chose
(metrics/evaluate.json), checks it, copies its two files and writes the model card.

The detector takes raw transactions and returns the fraud probability:

    transaction (rows, 29) float64: V1 … V28, Amount, in that order
      → preprocess, in float64:
          log_amount = log(Amount + eps)                        (clean.eps)
          features   = [V1 … V28, log_amount]
          standardise: (features - mean) / scale                (training split, scaler.json)
          clip to ±clip                                         (scale.clip)
          cast to float32
      → hidden → output: the trained network's weights (dropout is off when scoring)
      → probability (rows, 1) float32

The preprocessing facts (eps, clip, mean, scale) travel inside the `.onnx` file as metadata
(`DETECTOR_METADATA`), written by its train_* stage beside the weights they belong to; the card
repeats them from there, so the card describes the file it ships, not a params file that may
have changed since.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import PipelineError
from .files import read_json_file
from .params import STRATEGIES, STRATEGY_ALIASES
from .schema import FEATURES, INPUT_COLUMNS, N_FEATURES

INPUT_NAME = "transaction"
NETWORK_INPUT = "features"  # the trained network's input: scaled features, float32
INPUT_DTYPE = "float64"
OUTPUT_NAME = "probability"
MODEL_NAME = "fraud_detector"
FORMATS = ("onnx", "keras")
PREPROCESSING_STEPS = [
    "Log Amount = log(Amount + eps)",
    "features = [V1, ..., V28, Log Amount]",
    "standardised = (features - mean) / scale  (statistics of the training split)",
    "clipped = clip(standardised, -clip, clip)",
    "cast to float32, then the trained network (hidden -> output)",
]
PREDICT_COMMAND = ("python -m src.predict models/fraud_detector.onnx transactions.csv "
                   "-o scores.csv")
# Keys of evaluate.json that name the choice rather than measure the model.
CHOICE_KEYS = ("model", "strategy", "chosen_by", "select_by")


@dataclass(frozen=True)
class ScalerStats:
    """The training split's standardisation, as the scale stage wrote it (scaler.json)."""
    mean: np.ndarray   # float64, one per FEATURES entry
    scale: np.ndarray  # float64, > 0
    clip: float


def _check_stats(label: str, mean: np.ndarray, scale: np.ndarray, fix: str) -> None:
    n = N_FEATURES
    if mean.shape != (n,) or scale.shape != (n,):
        raise PipelineError(f"{label}: expected {n} means and {n} scales, got "
                            f"{mean.shape[0] if mean.ndim else 0} and "
                            f"{scale.shape[0] if scale.ndim else 0}; {fix}")
    if not (np.isfinite(mean).all() and np.isfinite(scale).all() and (scale > 0).all()):
        raise PipelineError(f"{label}: means must be finite and scales finite and > 0; {fix}")


def read_scaler(path: str | Path, clip: float) -> ScalerStats:
    """Reads scaler.json; its clip must equal `scale.clip` (else it is stale)."""
    path = Path(path)
    data = read_json_file(path, "scale")
    if not {"features", "mean", "scale", "clip"} <= set(data):
        raise PipelineError(f"{path}: expected an object with features, mean, scale and clip; "
                            "run the scale stage again")
    if data["features"] != FEATURES:
        raise PipelineError(f"{path}: features are {data['features']}, expected {FEATURES}; "
                            "run the scale stage again")
    try:
        mean = np.asarray(data["mean"], dtype=np.float64)
        scale = np.asarray(data["scale"], dtype=np.float64)
        stored_clip = float(data["clip"])
    except (TypeError, ValueError):
        raise PipelineError(f"{path}: mean, scale and clip must be numbers; run the scale "
                            "stage again") from None
    _check_stats(str(path), mean, scale, "run the scale stage again")
    if stored_clip != clip:
        raise PipelineError(f"{path}: written with clip {stored_clip:g}, but scale.clip is "
                            f"{clip:g}; run the scale stage again (dvc repro)")
    return ScalerStats(mean=mean, scale=scale, clip=clip)


def read_choice(path: str | Path) -> tuple[str, dict[str, Any]]:
    """The chosen model's name and its metrics, from evaluate's metrics/evaluate.json.

    The name is under `model` (older files: `strategy`). Only the Keras strategies have a
    deployable detector; a scikit-learn peer chosen by evaluate cannot be exported.
    """
    path = Path(path)
    data = read_json_file(path, "evaluate")
    name = data.get("model", data.get("strategy"))
    if not isinstance(name, str) or not name:
        raise PipelineError(f"{path}: no 'model' naming the chosen model; run the evaluate "
                            "stage again")
    name = STRATEGY_ALIASES.get(name, name)
    if name not in STRATEGIES:
        raise PipelineError(f"{path}: the chosen model {name!r} has no deployable detector; "
                            f"only the Keras strategies ({', '.join(STRATEGIES)}) are exported: "
                            "choose one, e.g. dvc exp run -S train.strategy=baseline")
    threshold = data.get("threshold")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) \
            or not math.isfinite(threshold) or not 0 <= threshold <= 1:
        raise PipelineError(f"{path}: expected a 'threshold' between 0 and 1, got "
                            f"{threshold!r}; run the evaluate stage again")
    return name, data


# --- what the `.onnx` detector carries about itself (ONNX metadata_props: strings) -----------

@dataclass(frozen=True)
class DetectorInfo:
    strategy: str
    eps: float
    clip: float
    mean: np.ndarray
    scale: np.ndarray
    keras_sha256: str          # the `.keras` detector written with it, by the same train run
    versions: dict[str, str]   # the libraries that wrote it


def detector_metadata(strategy: str, stats: ScalerStats, eps: float, keras_sha256: str,
                      versions: dict[str, str]) -> dict[str, str]:
    """The `.onnx` detector's metadata (JSON strings; floats round-trip exactly)."""
    return {"model_name": MODEL_NAME, "strategy": strategy,
            "input_columns": json.dumps(INPUT_COLUMNS), "eps": json.dumps(float(eps)),
            "clip": json.dumps(float(stats.clip)),
            "mean": json.dumps([float(v) for v in stats.mean]),
            "scale": json.dumps([float(v) for v in stats.scale]),
            "keras_sha256": keras_sha256, "versions": json.dumps(versions, sort_keys=True)}


def read_detector_metadata(metadata: dict[str, str], label: str, stage: str) -> DetectorInfo:
    """Parses `detector_metadata`; anything missing or malformed means a stale or foreign file."""
    fix = f"run the {stage} stage again"
    try:
        columns = json.loads(metadata["input_columns"])
        info = DetectorInfo(
            strategy=metadata["strategy"], eps=float(json.loads(metadata["eps"])),
            clip=float(json.loads(metadata["clip"])),
            mean=np.asarray(json.loads(metadata["mean"]), dtype=np.float64),
            scale=np.asarray(json.loads(metadata["scale"]), dtype=np.float64),
            keras_sha256=metadata["keras_sha256"],
            versions=dict(json.loads(metadata["versions"])))
    except (KeyError, TypeError, ValueError) as error:
        raise PipelineError(f"{label}: not a fraud detector written by train_baseline, "
                            f"train_weighted or train_resampled (metadata: "
                            f"{type(error).__name__} {error}); {fix}") from None
    if columns != INPUT_COLUMNS:
        raise PipelineError(f"{label}: takes the columns {columns}, expected {INPUT_COLUMNS}; "
                            f"{fix}")
    _check_stats(label, info.mean, info.scale, fix)
    return info


USAGE = {
    "input": (f"a float64 array of shape (rows, {len(INPUT_COLUMNS)}): the columns of "
              "input_columns in that order, raw values as in creditcard.csv (Amount in "
              "currency units, not logged or scaled). Time and Class are not inputs."),
    "output": "an array of shape (rows, 1): the probability that each row is fraud",
    "decide": "flag a row as fraud when probability >= threshold",
    "onnx_load": "import onnxruntime as ort; session = ort.InferenceSession("
                 "'fraud_detector.onnx', providers=['CPUExecutionProvider'])  # no TensorFlow",
    "onnx_predict": f"probability = session.run(['{OUTPUT_NAME}'], {{'{INPUT_NAME}': "
                    "x.astype('float64')})[0][:, 0]  # in batches of ~65,536 rows",
    "onnx_other_languages": f"ONNX Runtime for Java, C#, C++ or JavaScript: feed one float64 "
                            f"tensor '{INPUT_NAME}' of shape [rows, {len(INPUT_COLUMNS)}], read "
                            f"the float32 tensor '{OUTPUT_NAME}' of shape [rows, 1]",
    "keras_load": "import keras; model = keras.saving.load_model('fraud_detector.keras')  "
                  "# safe_mode stays on; no project code needed",
    "keras_predict": "probability = model(x.astype('float64'), training=False).numpy()[:, 0]  "
                     "# in batches of ~65,536 rows; model.predict(x, batch_size=8192) also "
                     "works, but Keras casts its input to float32 first (probabilities then "
                     "differ from the pipeline's by up to ~4e-7)",
    "keras_preprocessing_only": "features = model.get_layer('preprocess')(x)  # the 29 "
                                "scaled, clipped float32 features the network sees",
    "command_line": PREDICT_COMMAND + "  # CSV or CSV.gz in, probability and flagged out; "
                                      "the .keras file works too",
}


def model_card(*, model: str, choice: dict[str, Any], info: DetectorInfo,
               files: dict[str, tuple[str, str]], sources: dict[str, str],
               raw_csv: str | Path, raw_sha256: str) -> dict[str, Any]:
    """The JSON card beside the model: what it is, what it was trained on, how to use it.

    `files`: format -> (file name, sha256); `sources`: format -> its train_* stage's file it
    was copied from. Deterministic (no timestamps), so equal exports give equal cards.
    """
    return {
        "model": model,
        "chosen_by": choice.get("chosen_by", "train.strategy"),
        "select_by": choice.get("select_by"),
        "files": {fmt: {"file": name, "sha256": sha, "source": sources[fmt],
                        "load": USAGE[f"{fmt}_load"], "predict": USAGE[f"{fmt}_predict"]}
                  for fmt, (name, sha) in files.items()},
        "threshold": float(choice["threshold"]),
        "threshold_source": "chosen by the evaluate stage on the validation split "
                            "(evaluate.threshold); override it to trade precision for recall",
        "input_columns": list(INPUT_COLUMNS),
        "input_name": INPUT_NAME,
        "input_dtype": INPUT_DTYPE,
        "output_name": OUTPUT_NAME,
        "output": "probability of fraud, float32, shape (rows, 1)",
        "eps": info.eps,
        "clip": info.clip,
        "preprocessing": list(PREPROCESSING_STEPS),
        "standardisation": {"features": list(FEATURES),
                            "mean": [float(v) for v in info.mean],
                            "scale": [float(v) for v in info.scale]},
        "training_data": {"file": str(raw_csv), "sha256": raw_sha256},
        "test_metrics": {key: value for key, value in sorted(choice.items())
                         if key not in CHOICE_KEYS and not key.startswith("val_")},
        "validation_metrics": {key: value for key, value in sorted(choice.items())
                               if key.startswith("val_")},
        "versions": dict(sorted(info.versions.items())),
        "usage": dict(USAGE),
    }
