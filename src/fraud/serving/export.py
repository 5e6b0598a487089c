"""Export: what ships (the chosen model's detector, as `.keras` and `.onnx`) and its card.

No TensorFlow here: the detectors are built by the train stages (src/fraud/serving/detector.py),
which have TensorFlow loaded anyway; the export stage only picks the one `evaluate` chose
(metrics/evaluate.json), checks it, copies its two files and writes the model card.

The detector's input/output contract and the preprocessing it carries: contract.py.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..errors import PipelineError
from ..files import read_json_file
from ..models import STRATEGIES, STRATEGY_ALIASES
from ..schema import FEATURES, INPUT_COLUMNS
from .contract import INPUT_DTYPE, INPUT_NAME, OUTPUT_NAME, DetectorInfo

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
