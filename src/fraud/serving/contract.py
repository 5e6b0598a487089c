"""The detector's ONNX input/output contract, and what its `.onnx` file carries.

Shared by the train stages (which write the detectors: serving/detector.py) and the export
stage (which ships one), so that neither imports the other.

The detector takes raw transactions and returns the fraud probability:

    transaction (rows, inputs) float64: the declared inputs (data.numeric, then data.amount)
      → preprocess, in float64:
          log_amount = log(amount + eps)                        (clean.eps; with an amount)
          features   = [numeric …, log_amount]
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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..core.declaration import (
    CREDIT_CARD_LAYOUT,
    LOG_PREFIX,
    MISSING_TEXT,
    codes_of_one_hot,
    one_hot_names,
)
from ..core.files import read_json_file
from ..errors import PipelineError

if TYPE_CHECKING:
    import onnx

INPUT_NAME = "transaction"
# The categorical columns' text, (rows, categorical columns) string, when data.categorical
# declares some (a detector without them has the one input above).
CATEGORY_INPUT = "category"
NETWORK_INPUT = "features"  # the trained network's input: scaled features, float32
INPUT_DTYPE = "float64"
OUTPUT_NAME = "probability"
MODEL_NAME = "fraud_detector"


@dataclass(frozen=True)
class ScalerStats:
    """The feature specification, as the scale stage wrote it (scaler.json): the raw inputs,
    which one is logged, and the training split's standardisation of the features."""
    mean: np.ndarray   # float64, one per feature
    scale: np.ndarray  # float64, > 0
    clip: float
    # The detector's raw input columns, in order, and the last one if it is logged
    # (log(x + clean.eps)); the Credit Card Fraud table's unless said.
    inputs: tuple[str, ...] = tuple(CREDIT_CARD_LAYOUT.inputs)
    log_input: str | None = CREDIT_CARD_LAYOUT.amount
    # The categorical columns, in order, each with its levels learnt on the training split
    # (sorted): one-hot features after the numeric ones, all zeros for an unseen category.
    categories: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def features(self) -> list[str]:
        """The scaled arrays' columns: the numeric features, then the one-hot blocks."""
        return [*features_of(self.inputs, self.log_input),
                *(name for column, levels in self.categories
                  for name in one_hot_names(column, levels))]

    @property
    def categorical(self) -> tuple[str, ...]:
        return tuple(column for column, _ in self.categories)

    def codes(self, features: np.ndarray) -> np.ndarray:
        """The scaled arrays with each one-hot block as one column of level codes (float64,
        NaN: missing or unseen), what a kind with native categorical splits reads; the
        ONNX twin is peer_onnx.codes_graph."""
        start = len(self.features) - sum(len(levels) for _, levels in self.categories)
        columns = [np.asarray(features[:, :start], dtype=np.float64)]
        for _, levels in self.categories:
            columns.append(codes_of_one_hot(features[:, start:start + len(levels)])[:, None])
            start += len(levels)
        return np.concatenate(columns, axis=1)

    @property
    def n_plain(self) -> int:
        """The inputs that pass through as they are: all but a logged last one."""
        return len(self.inputs) - (1 if self.log_input else 0)


def features_of(inputs: tuple[str, ...] | list[str], log_input: str | None) -> list[str]:
    """The model's feature names: the inputs, the logged one renamed `Log <name>`."""
    names = list(inputs)
    if log_input is not None:
        names[-1] = LOG_PREFIX + log_input
    return names


def _check_spec(label: str, inputs: object, log_input: object, fix: str
                ) -> tuple[tuple[str, ...], str | None]:
    ok = isinstance(inputs, list) and inputs and all(isinstance(c, str) for c in inputs) \
        and len(set(inputs)) == len(inputs) \
        and (log_input is None or (isinstance(log_input, str) and inputs[-1] == log_input))
    if not ok:
        raise PipelineError(f"{label}: its input columns are not a list of distinct names "
                            f"ending with the logged one; {fix}")
    return tuple(inputs), log_input  # type: ignore[arg-type, return-value]


def _check_stats(label: str, mean: np.ndarray, scale: np.ndarray, fix: str, n: int) -> None:
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
    if not {"inputs", "log_input", "features", "mean", "scale", "clip"} <= set(data):
        raise PipelineError(f"{path}: expected an object with inputs, log_input, features, mean, "
                            "scale and clip; run the scale stage again")
    inputs, log_input = _check_spec(str(path), data["inputs"], data["log_input"],
                                    "run the scale stage again")
    categories = check_categories(str(path), data.get("categorical", []), inputs,
                                  "run the scale stage again")
    expected = ScalerStats(np.zeros(0), np.zeros(0), clip, inputs, log_input,
                           categories).features
    if data["features"] != expected:
        raise PipelineError(f"{path}: features are {data['features']}, expected "
                            f"{expected}; run the scale stage again")
    try:
        mean = np.asarray(data["mean"], dtype=np.float64)
        scale = np.asarray(data["scale"], dtype=np.float64)
        stored_clip = float(data["clip"])
    except (TypeError, ValueError):
        raise PipelineError(f"{path}: mean, scale and clip must be numbers; run the scale "
                            "stage again") from None
    _check_stats(str(path), mean, scale, "run the scale stage again", len(inputs))
    if stored_clip != clip:
        raise PipelineError(f"{path}: written with clip {stored_clip:g}, but scale.clip is "
                            f"{clip:g}; run the scale stage again (dvc repro)")
    return ScalerStats(mean=mean, scale=scale, clip=clip, inputs=inputs, log_input=log_input,
                       categories=categories)


def categories_json(categories: tuple[tuple[str, tuple[str, ...]], ...]
                    ) -> list[dict[str, object]]:
    """The categorical columns as scaler.json, the detector's metadata and the card carry
    them: a list (JSON files are written with sorted keys: an object would lose the
    columns' order), `[{"column": name, "levels": [...]}, ...]`."""
    return [{"column": column, "levels": list(levels)} for column, levels in categories]


def check_categories(label: str, value: object, inputs: tuple[str, ...], fix: str
                     ) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """`categories_json`'s list, checked: distinct columns apart from the numeric inputs,
    levels distinct, sorted, non-empty text."""
    ok = isinstance(value, list) and all(
        isinstance(entry, dict) and set(entry) == {"column", "levels"}
        and isinstance(entry["column"], str) and entry["column"] not in inputs
        and isinstance(entry["levels"], list) and entry["levels"]
        and all(isinstance(v, str) and v != MISSING_TEXT for v in entry["levels"])
        and entry["levels"] == sorted(set(entry["levels"])) for entry in value)
    columns = [entry["column"] for entry in value] if ok else []  # type: ignore[union-attr]
    if not ok or len(set(columns)) != len(columns):
        raise PipelineError(f"{label}: its categorical levels are not a list of distinct "
                            f"columns, each with sorted, distinct, non-empty levels; {fix}")
    return tuple((entry["column"], tuple(entry["levels"]))  # type: ignore[index]
                 for entry in value)  # type: ignore[union-attr]


# --- what the `.onnx` detector carries about itself (ONNX metadata_props: strings) -----------

@dataclass(frozen=True)
class DetectorInfo:
    strategy: str
    inputs: tuple[str, ...]    # its raw input columns, in order
    log_input: str | None      # the last input, logged, or None
    eps: float
    clip: float
    mean: np.ndarray
    scale: np.ndarray
    keras_sha256: str          # the `.keras` detector written with it, by the same train run
    versions: dict[str, str]   # the libraries that wrote it
    categories: tuple[tuple[str, tuple[str, ...]], ...] = ()  # as ScalerStats'

    def stats(self) -> ScalerStats:
        return ScalerStats(mean=self.mean, scale=self.scale, clip=self.clip,
                           inputs=self.inputs, log_input=self.log_input,
                           categories=self.categories)


def detector_metadata(strategy: str, stats: ScalerStats, eps: float, keras_sha256: str,
                      versions: dict[str, str]) -> dict[str, str]:
    """The `.onnx` detector's metadata (JSON strings; floats round-trip exactly). The
    categorical levels only when there are some: a detector without is as it always was."""
    categorical = {"categorical": json.dumps(categories_json(stats.categories))} \
        if stats.categories else {}
    return {**categorical, "model_name": MODEL_NAME, "strategy": strategy,
            "input_columns": json.dumps(list(stats.inputs)),
            "log_input": json.dumps(stats.log_input), "eps": json.dumps(float(eps)),
            "clip": json.dumps(float(stats.clip)),
            "mean": json.dumps([float(v) for v in stats.mean]),
            "scale": json.dumps([float(v) for v in stats.scale]),
            "keras_sha256": keras_sha256, "versions": json.dumps(versions, sort_keys=True)}


def read_detector_metadata(metadata: dict[str, str], label: str, stage: str) -> DetectorInfo:
    """Parses `detector_metadata`; anything missing or malformed means a stale or foreign file."""
    fix = f"run the {stage} stage again"
    try:
        inputs, log_input = _check_spec(label, json.loads(metadata["input_columns"]),
                                        json.loads(metadata["log_input"]), fix)
        info = DetectorInfo(
            strategy=metadata["strategy"], inputs=inputs, log_input=log_input,
            eps=float(json.loads(metadata["eps"])),
            clip=float(json.loads(metadata["clip"])),
            mean=np.asarray(json.loads(metadata["mean"]), dtype=np.float64),
            scale=np.asarray(json.loads(metadata["scale"]), dtype=np.float64),
            keras_sha256=metadata["keras_sha256"],
            versions=dict(json.loads(metadata["versions"])),
            categories=check_categories(label, json.loads(metadata.get("categorical", "[]")),
                                        inputs, fix))
    except (KeyError, TypeError, ValueError) as error:
        raise PipelineError(f"{label}: not a fraud detector written by train_baseline, "
                            f"train_weighted or train_resampled (metadata: "
                            f"{type(error).__name__} {error}); {fix}") from None
    _check_stats(label, info.mean, info.scale, fix, len(inputs))
    return info


def save_onnx(model: onnx.ModelProto, path: Path) -> None:
    """One self-contained file (no external data), deterministic bytes: what the train stages
    write for every detector and export ships."""
    import onnx

    onnx.checker.check_model(model)
    Path(path).write_bytes(model.SerializeToString(deterministic=True))
