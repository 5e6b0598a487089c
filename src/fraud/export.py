"""Export: the champion network with the preprocessing attached, as one self-contained model.

The tutorial: "If you want to deploy a model, it's critical that you preserve the
preprocessing calculations. The easiest way to implement them as layers, and attach them to
your model before export." The exported model takes raw transactions and returns the fraud
probability:

    transaction (rows, 29) float64: V1 … V28, Amount, in that order
      → preprocess (a nested functional model, built-in Keras ops only, in float64):
          log_amount = log(Amount + eps)                        (clean.eps)
          features   = [V1 … V28, log_amount]
          standardise: (features - mean) / scale                (training split, scaler.json)
          clip to ±clip                                         (scale.clip)
          cast to float32
      → hidden → dropout → output: the trained network's own layers and weights
      → (rows, 1) fraud probability

Only built-in Keras ops and layers appear in the graph (GetItem, Add, Log, Concatenate,
Subtract, Divide, Clip, Cast; the constants are stored in config.json as `__numpy__`
arrays), so `keras.saving.load_model(path)` loads it in safe mode without any project code.
In float64 the ops reproduce the pipeline's numpy / scikit-learn arithmetic exactly (the
features come out bit-identical; tests check it).

Keras' `model.predict` casts float64 inputs to float32 before the first op (its data adapter
normalises floats to `floatx`); calling the model, `model(x)`, on float64 keeps the
precision. See `USAGE` for what the card tells users.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import PipelineError
from .model import keras, tf
from .schema import FEATURES, V_COLUMNS
# The input columns, in this order (Time is not an input; Class is the label).
from .scoring import INPUT_COLUMNS, PREPROCESS_NAME

INPUT_NAME = "transaction"
INPUT_DTYPE = "float64"
MODEL_NAME = "fraud_detector"
PREPROCESSING_STEPS = [
    "Log Amount = log(Amount + eps)",
    "features = [V1, ..., V28, Log Amount]",
    "standardised = (features - mean) / scale  (statistics of the training split)",
    "clipped = clip(standardised, -clip, clip)",
    "cast to float32, then the trained network (hidden -> dropout -> output)",
]
PREDICT_COMMAND = ("python -m src.predict models/fraud_detector.keras transactions.csv "
                   "-o scores.csv")


@dataclass(frozen=True)
class ScalerStats:
    """The training split's standardisation, as the scale stage wrote it (scaler.json)."""
    mean: np.ndarray   # float64, one per FEATURES entry
    scale: np.ndarray  # float64, > 0
    clip: float


def read_scaler(path: str | Path, clip: float) -> ScalerStats:
    """Reads scaler.json; its clip must equal `scale.clip` (else it is stale)."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path}: not found; run the scale stage first")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise PipelineError(f"{path}: not valid JSON ({error}); run the scale stage again") \
            from None
    if not isinstance(data, dict) or not {"features", "mean", "scale", "clip"} <= set(data):
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
    n = len(FEATURES)
    if mean.shape != (n,) or scale.shape != (n,):
        raise PipelineError(f"{path}: expected {n} means and {n} scales, got {mean.shape[0]} "
                            f"and {scale.shape[0]}; run the scale stage again")
    if not (np.isfinite(mean).all() and np.isfinite(scale).all() and (scale > 0).all()):
        raise PipelineError(f"{path}: means must be finite and scales finite and > 0; run the "
                            "scale stage again")
    if stored_clip != clip:
        raise PipelineError(f"{path}: written with clip {stored_clip:g}, but scale.clip is "
                            f"{clip:g}; run the scale stage again (dvc repro)")
    return ScalerStats(mean=mean, scale=scale, clip=clip)


def read_strategy_metrics(path: str | Path) -> dict[str, Any]:
    """The strategy's test metrics written by evaluate, with the decision threshold it chose."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path}: not found; run the evaluate stage first")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise PipelineError(f"{path}: not valid JSON ({error}); run the evaluate stage again") \
            from None
    threshold = data.get("threshold") if isinstance(data, dict) else None
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) \
            or not 0 <= threshold <= 1 or not math.isfinite(threshold):
        raise PipelineError(f"{path}: expected a 'threshold' between 0 and 1, got "
                            f"{threshold!r}; run the evaluate stage again")
    return data


def file_sha256(path: str | Path, what: str = "file") -> str:
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path}: {what} not found")
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def check_network(network: keras.Model, label: str | Path) -> None:
    """The trained network must take the 29 scaled features and return one probability."""
    inputs, outputs = network.inputs, network.outputs
    if len(inputs) != 1 or tuple(inputs[0].shape) != (None, len(FEATURES)):
        raise PipelineError(f"{label}: expected a model with one (rows, {len(FEATURES)}) input, "
                            f"got {[tuple(t.shape) for t in inputs]}; run the train stages again")
    if len(outputs) != 1 or tuple(outputs[0].shape) != (None, 1):
        raise PipelineError(f"{label}: expected a model with one (rows, 1) output, got "
                            f"{[tuple(t.shape) for t in outputs]}; run the train stages again")


def _name(tensor: Any, name: str) -> Any:
    """Names the op that produced `tensor`.

    keras.ops functions take no `name`: left alone, ops get process-wide counters
    (`get_item_3`), so the saved config (and the file's bytes) would depend on what the
    process built before. Fixed names keep the export byte-identical.
    """
    tensor._keras_history.operation.name = name
    return tensor


def build_preprocess(stats: ScalerStats, eps: float) -> keras.Model:
    """Raw (rows, 29) float64 V1…V28, Amount → the (rows, 29) float32 features the network
    was trained on, with the pipeline's arithmetic (clean, then scale) in float64."""
    from keras import ops

    raw = keras.Input(shape=(len(INPUT_COLUMNS),), dtype=INPUT_DTYPE, name="raw")
    v = _name(raw[:, :len(V_COLUMNS)], "v1_v28")
    amount = _name(raw[:, len(V_COLUMNS):], "amount")
    shifted = _name(ops.add(amount, float(eps)), "amount_plus_eps")
    log_amount = _name(ops.log(shifted), "log_amount")
    features = _name(ops.concatenate([v, log_amount], axis=1), "features")
    centred = _name(ops.subtract(features, stats.mean), "standardise_centre")
    standardised = _name(ops.divide(centred, stats.scale), "standardise_scale")
    clipped = _name(ops.clip(standardised, -float(stats.clip), float(stats.clip)), "clip")
    out = _name(ops.cast(clipped, "float32"), "to_float32")
    return keras.Model(raw, out, name=PREPROCESS_NAME)


def build_detector(network: keras.Model, stats: ScalerStats, eps: float) -> keras.Model:
    """transaction → preprocess → the network's layers (weights shared, not copied)."""
    preprocess = build_preprocess(stats, eps)
    raw = keras.Input(shape=(len(INPUT_COLUMNS),), dtype=INPUT_DTYPE, name=INPUT_NAME)
    x = preprocess(raw)
    for layer in network.layers:
        x = layer(x)
    return keras.Model(raw, x, name=MODEL_NAME)


def predict_raw(model: keras.Model, raw: np.ndarray, batch_size: int = 65536) -> np.ndarray:
    """Fraud probabilities (float64, 1-D) for raw rows, calling the model on float64 batches.

    `model.predict` would cast the input to float32 first; a direct call keeps float64 and
    reproduces the pipeline's probabilities exactly.
    """
    raw = np.ascontiguousarray(raw, dtype=np.float64)
    if raw.ndim != 2 or raw.shape[1] != len(INPUT_COLUMNS):
        raise ValueError(f"expected a (rows, {len(INPUT_COLUMNS)}) array, got {raw.shape}")
    parts = [np.asarray(model(raw[start:start + batch_size], training=False)).reshape(-1)
             for start in range(0, len(raw), batch_size)]
    return (np.concatenate(parts) if parts else np.empty(0)).astype(np.float64)


USAGE = {
    "input": (f"a float64 array of shape (rows, {len(INPUT_COLUMNS)}): the columns of "
              "input_columns in that order, raw values as in creditcard.csv (Amount in "
              "currency units, not logged or scaled). Time and Class are not inputs."),
    "output": "an array of shape (rows, 1): the probability that each row is fraud",
    "decide": "flag a row as fraud when probability >= threshold",
    "load": "import keras; model = keras.saving.load_model('fraud_detector.keras')  "
            "# safe_mode stays on; no project code needed",
    "predict": "probability = model(x.astype('float64'), training=False).numpy()[:, 0]  "
               "# in batches of ~65,536 rows; model.predict(x, batch_size=8192) also works, "
               "but Keras casts its input to float32 first (probabilities then differ from "
               "the pipeline's by up to ~4e-7)",
    "preprocessing_only": "features = model.get_layer('preprocess')(x)  # the 29 scaled, "
                          "clipped float32 features the network sees",
    "command_line": PREDICT_COMMAND + "  # CSV or CSV.gz in, probability and flagged out",
}


def model_card(*, strategy: str, threshold: float, metrics: dict[str, Any], stats: ScalerStats,
               eps: float, raw_csv: str | Path, raw_sha256: str, network_path: str | Path,
               network_sha256: str, model_file: str) -> dict[str, Any]:
    """The JSON card beside the model: what it is, what it was trained on, how to use it.

    Deterministic (no timestamps), so equal exports give equal cards.
    """
    return {
        "model_file": model_file,
        "strategy": strategy,
        "threshold": float(threshold),
        "threshold_source": "chosen by the evaluate stage on the validation split "
                            "(evaluate.threshold); override it to trade precision for recall",
        "input_columns": list(INPUT_COLUMNS),
        "input_name": INPUT_NAME,
        "input_dtype": INPUT_DTYPE,
        "output": "probability of fraud, shape (rows, 1)",
        "eps": float(eps),
        "clip": float(stats.clip),
        "preprocessing": list(PREPROCESSING_STEPS),
        "standardisation": {
            "features": list(FEATURES),
            "mean": [float(v) for v in stats.mean],
            "scale": [float(v) for v in stats.scale],
        },
        "training_data": {"file": str(raw_csv), "sha256": raw_sha256},
        "network": {"file": str(network_path), "sha256": network_sha256},
        "test_metrics": {key: value for key, value in sorted(metrics.items())
                         if key != "strategy"},
        "versions": {
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "numpy": np.__version__,
        },
        "usage": dict(USAGE),
    }
