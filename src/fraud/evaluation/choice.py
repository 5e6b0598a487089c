"""One model's evaluation, and the choice of the model to ship (no TensorFlow here).

Every choice is made on the validation split: the decision threshold (per model, by
`evaluate.threshold`) and the model itself (`train.strategy: auto`, by `evaluate.select_by`).
The test split is only measured, with bootstrap intervals.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core.models import AUTO
from ..core.params import SELECT_BY, EvaluateParams
from ..errors import PipelineError, check_logits, check_probabilities, require_file
from . import metrics

Scorer = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Scored:
    """A split's labels, the model's probabilities, and the amounts when costs need them."""
    labels: np.ndarray
    scores: np.ndarray
    amounts: np.ndarray | None = None


def _require_keras_archive(path: Path, stage_hint: str) -> None:
    """A `.keras` file is a zip archive: anything else fails here, in one line, without
    importing TensorFlow (~5 s) to find out."""
    import zipfile

    require_file(path, stage_hint, "model")
    if not zipfile.is_zipfile(path):
        raise PipelineError(f"{path}: not a loadable Keras model (not a .keras zip archive); "
                            f"run the {stage_hint} stage again")


def load_scorer(path: str | Path, stage_hint: str, batch_size: int) -> Scorer:
    """Fraud probabilities (float64, 1-D) from a saved model, by its file type: `.onnx`
    (ONNX Runtime), `.skops` (a scikit-learn kind) or `.keras` (imports TensorFlow)."""
    path = Path(path)
    if path.suffix == ".onnx":
        from ..serving.onnx_contract import NETWORK
        from ..serving.onnx_scoring import load_onnx
        return load_onnx(path, stage_hint, NETWORK)
    if path.suffix == ".skops":
        from ..kinds import _scikit
        peer = _scikit.load_model(path, stage_hint)
        return lambda features: check_probabilities(_scikit.scores(peer, features), str(path),
                                                    f"run the {stage_hint} stage again")
    if path.suffix == ".keras":
        _require_keras_archive(path, stage_hint)  # before TensorFlow's ~5 s import
        from ..training import network as keras_model
        network = keras_model.load_model(path, stage_hint)
        return lambda features: check_probabilities(
            keras_model.predict_proba(network, features, batch_size), str(path),
            f"run the {stage_hint} stage again")
    raise PipelineError(f"{path}: unknown model type {path.suffix!r}; expected .onnx, "
                        ".skops or .keras")


@dataclass(frozen=True)
class LogitScorer:
    """A saved model's logit (float64, 1-D) and what scoring and calibrating it needs."""
    logit: Scorer
    # Whether it was trained with balanced class weights: a peer's own setting (the
    # networks' strategy is their name); None when the file does not say (an ONNX detector).
    balanced: bool | None
    # It takes raw transactions (its input columns: a detector, as it ships) rather than the
    # scaled features the scale stage writes.
    raw_input: bool


def load_logit_scorer(path: str | Path, stage_hint: str, batch_size: int) -> LogitScorer:
    """The model's logit from a saved model, by file type as `load_scorer`. An `.onnx` file
    is a trained network (scaled features in) or a detector (raw transactions in), by its
    input's name. Calibration maps the logit to a probability."""
    path = Path(path)
    fix = f"run the {stage_hint} stage again"
    if path.suffix == ".onnx":
        from ..serving.contract import INPUT_NAME
        from ..serving.onnx_scoring import load_onnx
        model = load_onnx(path, stage_hint, None, logit=True)
        raw = model.input_name == INPUT_NAME
        return LogitScorer(model, None if raw else False, raw)
    if path.suffix == ".skops":
        from ..kinds import _scikit
        peer = _scikit.load_model(path, stage_hint)
        return LogitScorer(
            lambda features: check_logits(_scikit.logits(peer, features), str(path), fix),
            getattr(peer, "class_weight", None) == "balanced", False)
    if path.suffix == ".keras":
        _require_keras_archive(path, stage_hint)  # before TensorFlow's ~5 s import
        from ..training import network as keras_model
        network = keras_model.load_model(path, stage_hint)
        return LogitScorer(lambda features: check_logits(
            keras_model.predict_logit(network, features, batch_size), str(path), fix),
            False, False)
    raise PipelineError(f"{path}: unknown model type {path.suffix!r}; expected .onnx, "
                        ".skops or .keras")


def validation_table(val: Scored) -> metrics.ThresholdTable:
    """Every candidate threshold's outcomes on validation: the threshold rule reads it, and
    so does the Threshold/Cost plot."""
    return metrics.threshold_table(val.labels, val.scores, val.amounts)


def evaluate_scores(val: Scored, test: Scored, params: EvaluateParams, seed: int,
                    table: metrics.ThresholdTable | None = None) -> dict[str, float]:
    """The flat metrics of one model: threshold and validation figures (exact), test metrics
    at that threshold, and 95 % bootstrap intervals on test. `table`: `validation_table(val)`
    when the caller has it already."""
    table = table if table is not None else validation_table(val)
    threshold = metrics.choose_threshold(params.threshold, table, params.target_recall,
                                         params.cost_fp, params.cost_fn)
    val_metrics = metrics.binary_metrics(val.labels, val.scores, threshold)
    result = metrics.binary_metrics(test.labels, test.scores, threshold)
    result.update({
        "threshold": threshold,
        "val_prc": val_metrics["prc"],
        "val_auc": val_metrics["auc"],
        "val_recall": val_metrics["recall"],
        "val_precision": val_metrics["precision"],
        "val_cost": metrics.cost_at(val.labels, val.scores, threshold, params.cost_fp,
                                    params.cost_fn, val.amounts),
        "cost": metrics.cost_at(test.labels, test.scores, threshold, params.cost_fp,
                                params.cost_fn, test.amounts),
    })
    result.update(metrics.bootstrap_intervals(test.labels, test.scores, threshold,
                                              params.bootstrap, seed))
    return result


# metrics/evaluate.json's first keys, in this order: `dvc exp show` lists a file's keys in
# the file's order, and a terminal shows only the leftmost columns of its wide table.
LEADING_KEYS = ("model", "strategy", "prc", "prc_low", "prc_high", "recall", "precision",
                "threshold", "chosen_by", "select_by")


def selected_metrics(per_model: Mapping[str, Mapping[str, Any]], choice: Mapping[str, Any],
                     strategy: str) -> dict[str, Any]:
    """The chosen model's metrics, with its name and how it was chosen (`strategy` is the
    train.strategy it was chosen under), leading keys first and the rest sorted."""
    merged = {**per_model[choice["model"]], **choice, "strategy": strategy}
    return {**{key: merged[key] for key in LEADING_KEYS},
            **{key: merged[key] for key in sorted(merged) if key not in LEADING_KEYS}}


def choose_model(per_model: Mapping[str, Mapping[str, Any]], strategy: str,
                 candidates: tuple[str, ...], select_by: str) -> dict[str, Any]:
    """The model to report and ship, and why: a named `train.strategy`, or with `auto` the
    candidate with the best `select_by` on validation (ties: the first candidate listed).

    Reads nothing but the `select_by` figure, a validation figure: the choice cannot
    depend on the test split.
    """
    if strategy != AUTO:
        if strategy not in per_model:
            raise PipelineError(f"train.strategy = {strategy!r}: no metrics for it")
        return {"model": strategy, "chosen_by": "train.strategy", "select_by": select_by}
    missing = [name for name in candidates if name not in per_model]
    if missing:
        raise PipelineError(f"evaluate.candidates: no metrics for {', '.join(missing)}")
    sign = 1.0 if SELECT_BY[select_by] == "max" else -1.0
    best = max(candidates, key=lambda name: (sign * float(per_model[name][select_by]),
                                             -candidates.index(name)))
    return {"model": best, "chosen_by": "validation", "select_by": select_by}
