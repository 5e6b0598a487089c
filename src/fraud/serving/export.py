"""Export: what ships (the chosen model's detector with its calibration, one `.onnx` file) and
its card.

No TensorFlow and no training here: the train stages build the detectors (networks:
src/fraud/serving/detector.py; peers: peer_onnx.py), evaluate_model fits each model's
calibrator on validation (models/calibration/<model>.json); the export stage picks the model
evaluate chose (metrics/evaluate.json), appends its calibrator to its detector as float64
ONNX nodes (calibrated.py) and writes the model card. Any of the five models can ship.

The detector's input/output contract and the preprocessing it carries: contract.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..core.calibrator import Calibrator
from ..core.decision import EXPECTED_COST, Decision, expected_cost_threshold
from ..core.declaration import CREDIT_CARD, DataDeclaration
from ..core.files import file_sha256, read_json_file
from ..core.models import MODELS, STRATEGY_ALIASES, TRAIN_STAGES
from ..core.params import EvaluateParams
from ..errors import PipelineError
from ..monitoring.profile import CARD_KEY, Reference, reference_to_json
from .contract import (
    CATEGORY_INPUT,
    INPUT_DTYPE,
    INPUT_NAME,
    OUTPUT_NAME,
    DetectorInfo,
    categories_json,
)

COMMON_STEPS = [
    "standardised = (features - mean) / scale  (statistics of the training split)",
    "clipped = clip(standardised, -clip, clip)",
    "cast to float32 (as the pipeline stores the features), then the model's logit",
    "calibrated logit = the calibration's increasing polyline of the logit (float64)",
    "probability = 1 / (1 + exp(-calibrated logit))  (float64)",
]


def preprocessing_steps(info: DetectorInfo) -> list[str]:
    """The card's recipe, from the detector's own inputs: what to compute by hand."""
    features = info.stats().features
    shown = f"{features[0]}, ..., {features[-2]}, {features[-1]}" if len(features) > 4 \
        else ", ".join(features)
    logged = info.log_input
    first = [f"{features[-1]} = log({logged} + eps)"] if logged else []
    return [*first, f"features = [{shown}]", *COMMON_STEPS]
PREDICT_COMMAND = ("fraud predict models/fraud_detector.onnx transactions.csv "
                   "-o scores.csv")
MONITOR_COMMAND = "fraud monitor models/fraud_detector.onnx batch.csv"
# Keys of evaluate.json that name the choice rather than measure the model.
CHOICE_KEYS = ("model", "strategy", "chosen_by", "select_by")
# The calibration figures evaluate_model writes into metrics/<model>.json (with `val_` twins
# for validation and `_raw` twins for the model's own, uncalibrated sigmoid).
CALIBRATION_FIGURES = ("loss", "log_loss", "brier", "ece", "ece15_width", "ece15_mass",
                       "expected_frauds", "frauds", "observed_frauds", "zero_probability_rows")


def read_choice(path: str | Path) -> tuple[str, dict[str, Any]]:
    """The chosen model's name and its metrics, from evaluate's metrics/evaluate.json.

    The name is under `model` (older files: `strategy`); any of the five models ships.
    """
    path = Path(path)
    data = read_json_file(path, "evaluate")
    name = data.get("model", data.get("strategy"))
    if not isinstance(name, str) or not name:
        raise PipelineError(f"{path}: no 'model' naming the chosen model; run the evaluate "
                            "stage again")
    name = STRATEGY_ALIASES.get(name, name)
    if name not in MODELS:
        raise PipelineError(f"{path}: the chosen model {name!r} is not one of "
                            f"{', '.join(MODELS)}; run the evaluate stage again")
    return name, data


def _threshold(choice: dict[str, Any], path: str | Path) -> float:
    threshold = choice.get("threshold")
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) \
            or not math.isfinite(threshold) or not 0 <= threshold <= 1:
        raise PipelineError(f"{path}: expected a 'threshold' between 0 and 1, got "
                            f"{threshold!r}; run the evaluate stage again")
    return float(threshold)


def shipped_decision(choice: dict[str, Any], settings: EvaluateParams,
                     path: str | Path) -> Decision:
    """The rule the card tells predict to apply: `expected_cost` flags per row from the
    costs (with a constant cost_fn that is the threshold cost_fp / (cost_fp + cost_fn));
    every other rule ships the threshold evaluate chose on validation."""
    if settings.threshold != EXPECTED_COST:
        return Decision(threshold=_threshold(choice, path))
    if settings.cost_fn == "amount":
        return Decision(rule=EXPECTED_COST, cost_fp=settings.cost_fp, cost_fn="amount")
    cost_fn = float(settings.cost_fn)
    return Decision(threshold=expected_cost_threshold(settings.cost_fp, cost_fn),
                    rule=EXPECTED_COST, cost_fp=settings.cost_fp, cost_fn=cost_fn)


def read_calibrator(path: str | Path, model: str, stage: str) -> Calibrator:
    """models/calibration/<model>.json: Calibrator.to_dict() and the `model` it belongs to."""
    path = Path(path)
    data = read_json_file(path, stage)
    if not isinstance(data, dict) or data.get("model") != model:
        found = data.get("model") if isinstance(data, dict) else None
        raise PipelineError(f"{path}: the calibration of {found!r}, not of {model!r}; run "
                            f"{stage} again")
    return Calibrator.from_dict({k: v for k, v in data.items() if k != "model"})


def shipped_model(model: str, detector_path: Path, calibration_path: Path
                  ) -> tuple[Any, Calibrator, DetectorInfo]:
    """What export ships for `model`: its detector (checked as predict will check it, and
    that it is this model's) with its calibrator appended; the calibrator; the detector's
    metadata. A missing, corrupt or foreign file is one line naming the stage to run."""
    import onnx

    from .calibrated import calibrated_onnx
    from .contract import read_detector_metadata
    from .onnx_contract import DETECTOR
    from .onnx_scoring import load_onnx

    stage = TRAIN_STAGES[model]
    detector = load_onnx(detector_path, stage, DETECTOR)
    info = read_detector_metadata(detector.metadata, str(detector_path), stage)
    if info.strategy != model:
        raise PipelineError(f"{detector_path}: the detector of {info.strategy!r}, not of "
                            f"{model!r}; run {stage} again (dvc repro {stage})")
    calibrator = read_calibrator(calibration_path, model, "evaluate_model")
    return calibrated_onnx(onnx.load(detector_path), calibrator), calibrator, info


def shipped_scorer(model: str, detector_path: Path, calibration_path: Path
                   ) -> tuple[Callable[[np.ndarray], np.ndarray], dict[str, str]]:
    """The calibrated probabilities `model` would ship with, scored in memory, and the
    sha256 of the files they come from (the card's `built_from`)."""
    from .onnx_scoring import model_in_memory

    shipped, _, _ = shipped_model(model, detector_path, calibration_path)
    score = model_in_memory(shipped.SerializeToString(deterministic=True),
                            f"{model} calibrated", "run the reference stage again")
    return score, {"detector": file_sha256(detector_path),
                   "calibration": file_sha256(calibration_path)}


def calibration_card(calibrator: Calibrator, metrics: dict[str, Any],
                     source: str) -> dict[str, Any]:
    """The card's `calibration`: the method, its parameters (the calibrator's JSON, as in the
    ONNX file's `calibration` metadata) and the calibration figures of metrics/<model>.json
    on validation and test, those the file has."""
    def figure(key: str) -> bool:
        return key.removeprefix("val_").removesuffix("_raw") in CALIBRATION_FIGURES

    return {"method": calibrator.method, "parameters": calibrator.to_dict(), "source": source,
            "fitted_on": "the validation split",
            "test": {k: v for k, v in sorted(metrics.items())
                     if figure(k) and not k.startswith("val_")},
            "validation": {k: v for k, v in sorted(metrics.items())
                           if figure(k) and k.startswith("val_")}}


def usage(info: DetectorInfo, data: DataDeclaration) -> dict[str, str]:
    """How to score with the file, in Python, other languages and on the command line."""
    width = len(info.inputs)
    amount = f"{info.log_input} in currency units, not logged or scaled" if info.log_input \
        else "not scaled"
    others = [c for c in (data.time, data.label) if c]
    return {
        "input": (f"a float64 array of shape (rows, {width}): the columns of input_columns in "
                  f"that order, raw values as in the training table ({amount})."
                  + (f" {' and '.join(others)} {'are' if len(others) > 1 else 'is'} not "
                     f"{'inputs' if len(others) > 1 else 'an input'}." if others else "")),
        "output": "a float64 array of shape (rows, 1): the calibrated probability that each "
                  "row is fraud",
        "decide": "see `decision`: flag a row when its rule holds (decide on the float64 "
                  "probability, not a rounded one)",
        "onnx_load": "import onnxruntime as ort; session = ort.InferenceSession("
                     "'fraud_detector.onnx', providers=['CPUExecutionProvider'])  # no TensorFlow",
        "onnx_predict": f"probability = session.run(['{OUTPUT_NAME}'], {{'{INPUT_NAME}': "
                        "x.astype('float64')})[0][:, 0]  # in batches of ~65,536 rows",
        "onnx_other_languages": f"ONNX Runtime for Java, C#, C++ or JavaScript: feed one "
                                f"float64 tensor '{INPUT_NAME}' of shape [rows, {width}], read "
                                f"the float64 tensor '{OUTPUT_NAME}' of shape [rows, 1]",
        "command_line": PREDICT_COMMAND + "  # CSV or CSV.gz in, probability and flagged out",
        "monitor": MONITOR_COMMAND + "  # drift and label-free estimates against "
                   f"{CARD_KEY}",
    }


def data_card(data: DataDeclaration) -> dict[str, Any]:
    """The card's `data`: the columns of a scored CSV besides the inputs (predict accepts
    the time, the entities and the label, and copies the ids to the scores)."""
    card = {"label": data.label, "positive": data.positive, "negative": data.negative,
            "time": data.time, "ids": list(data.ids), "entities": list(data.entities)}
    if data.history.active:  # what `fraud predict --history` computes before scoring
        spec = data.history
        card["history"] = {"windows": list(spec.windows), "delay": spec.delay,
                           "spending": list(spec.spending), "risk": list(spec.risk),
                           "time_flags": spec.time_flags, "columns": list(spec.columns())}
    return card


def model_card(*, model: str, choice: dict[str, Any], info: DetectorInfo,
               shipped: tuple[str, str], sources: dict[str, tuple[str, str]],
               calibration: dict[str, Any], decision: Decision,
               raw_csv: str | Path, raw_sha256: str, reference: Reference,
               importance: dict[str, Any], data: DataDeclaration = CREDIT_CARD
               ) -> dict[str, Any]:
    """The JSON card beside the model: what it is, what it was trained on, how it is
    calibrated, how to use it.

    `shipped`: (file name, sha256) of the calibrated `.onnx`; `sources`: what it was built
    from, name -> (path, sha256): the model's detector (from its train_* stage) and evaluate_model's
    calibrator. `reference`: the training split's profile for monitoring (monitoring/);
    `importance`: the model's top features (evaluation/importance.py); `data`: the table's
    declaration (params.yaml's data:). Deterministic (no
    timestamps), so equal exports give equal cards.
    """
    how = usage(info, data)
    return {
        "model": model,
        "chosen_by": choice.get("chosen_by", "train.strategy"),
        "select_by": choice.get("select_by"),
        "files": {"onnx": {"file": shipped[0], "sha256": shipped[1],
                           "built_from": {name: {"file": path, "sha256": sha}
                                          for name, (path, sha) in sources.items()},
                           "load": how["onnx_load"], "predict": how["onnx_predict"]}},
        "threshold": decision.threshold,
        "threshold_source": ("evaluate.threshold: expected_cost, from the costs (no search)"
                             if decision.rule == EXPECTED_COST else
                             "chosen by the evaluate stage on the validation split "
                             "(evaluate.threshold); override it to trade precision for recall"),
        "decision": decision.to_card(),
        "calibration": calibration,
        "input_columns": list(info.inputs),
        "data": data_card(data),
        "input_name": INPUT_NAME,
        "input_dtype": INPUT_DTYPE,
        "output_name": OUTPUT_NAME,
        "output": "calibrated probability of fraud, float64, shape (rows, 1)",
        "output_dtype": "float64",
        "eps": info.eps,
        "clip": info.clip,
        "preprocessing": preprocessing_steps(info),
        # Only with categorical columns: the Credit Card Fraud card stays as it was.
        **({"categorical": {
            "input_name": CATEGORY_INPUT, "columns": categories_json(info.categories),
            "input": f"a (rows, {len(info.categories)}) string tensor '{CATEGORY_INPUT}': "
                     "these columns' text, in this order; a missing cell is empty text",
            "unseen": "an unseen category (or a missing one) counts as none of the known "
                      "levels"}} if info.categories else {}),
        "standardisation": {"features": info.stats().features,
                            "mean": [float(v) for v in info.mean],
                            "scale": [float(v) for v in info.scale]},
        "training_data": {"file": str(raw_csv), "sha256": raw_sha256},
        "test_metrics": {key: value for key, value in sorted(choice.items())
                         if key not in CHOICE_KEYS and not key.startswith("val_")},
        "validation_metrics": {key: value for key, value in sorted(choice.items())
                               if key.startswith("val_")},
        "importance": importance,
        CARD_KEY: reference_to_json(reference),
        "versions": dict(sorted(info.versions.items())),
        "usage": how,
    }
