"""The model, its metrics, deterministic set-up and reproducible saving (TensorFlow here only)."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np

from ..core.params import ModelParams
from ..errors import PipelineError, first_line, printable, require_file
from .deferred import defer_imports
from .quiet import filtered_stderr, set_log_level

defer_imports()  # what Keras imports and the pipeline never uses: ~0.5 s per process
# Before the import: TensorFlow's C++ logging reads the level once (quiet.py says why 3).
with filtered_stderr(set_log_level()):
    import keras
    import tensorflow as tf

FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


# TensorFlow's thread pools, fixed (the defaults follow the machine's core count). The model's
# ops are tiny, so more threads only add hand-offs: one thread gives the same weights, the same
# or shorter epochs and ~15 % less CPU (bench/NOTES.md), and one setting for every machine.
TF_THREADS = 1


def set_threads(threads: int = TF_THREADS) -> None:
    """Fixes TensorFlow's intra- and inter-op thread pools, if TensorFlow has not started yet
    (the pools cannot change afterwards; the results do not depend on them)."""
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # already initialised, e.g. by an earlier test in the same process
        pass


def set_determinism(seed: int) -> None:
    """One seed for Python, numpy and TensorFlow, deterministic TF kernels, fixed threads.

    Measured: identical weights over repeated runs, at no measurable cost on CPU.
    """
    set_threads()
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def make_metrics() -> list[keras.metrics.Metric]:
    """The tutorial's metrics plus Brier score and PR-AUC (`prc`).

    Keras' AUCs bin at 200 thresholds: fine to monitor training, but `evaluate` reports
    test AUCs computed exactly with scikit-learn.
    """
    return [
        keras.metrics.BinaryCrossentropy(name="cross_entropy"),
        keras.metrics.MeanSquaredError(name="brier"),
        keras.metrics.TruePositives(name="tp"),
        keras.metrics.FalsePositives(name="fp"),
        keras.metrics.TrueNegatives(name="tn"),
        keras.metrics.FalseNegatives(name="fn"),
        keras.metrics.BinaryAccuracy(name="accuracy"),
        keras.metrics.Precision(name="precision"),
        keras.metrics.Recall(name="recall"),
        keras.metrics.AUC(name="auc"),
        keras.metrics.AUC(name="prc", curve="PR"),
    ]


def make_model(n_features: int, params: ModelParams, output_bias: float | None = None,
               steps_per_execution: int = 1) -> keras.Model:
    """Dense(relu) → Dropout → Dense(sigmoid), Adam and binary cross-entropy, as the tutorial.

    `output_bias` sets the output layer's initial bias (the careful `log(pos/neg)`).
    Compiled with the loss alone: the metrics of `make_metrics()` are computed on the
    validation split once per epoch (fit.ValidationMetrics), not on every training batch,
    which cost ~1.5 s of tracing per fit and part of every step (bench/NOTES.md). Metrics
    draw no random numbers, so the losses and weights are the same either way.
    """
    bias = (keras.initializers.Constant(output_bias) if output_bias is not None else "zeros")
    model = keras.Sequential([
        keras.Input(shape=(n_features,), name="features"),
        keras.layers.Dense(params.hidden_units, activation="relu", name="hidden"),
        keras.layers.Dropout(params.dropout, name="dropout"),
        keras.layers.Dense(1, activation="sigmoid", bias_initializer=bias, name="output"),
    ], name="fraud_classifier")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=params.learning_rate),
                  loss=keras.losses.BinaryCrossentropy(),
                  steps_per_execution=steps_per_execution)
    return model


def careful_bias(labels: np.ndarray) -> float:
    """b0 = log(pos/neg): the output then starts at the base rate, not at 0.5."""
    pos = int(labels.sum())
    neg = int(len(labels) - pos)
    if pos == 0 or neg == 0:
        raise PipelineError(f"training labels hold {pos} positives and {neg} negatives; "
                            "both classes are needed")
    return float(np.log(pos / neg))


def _renumber_shared_objects(config: object) -> object:
    """Keras numbers objects shared by several layers (the dtype policy) by their memory
    address, `id()`, which changes on every run; number them 1, 2, ... in order instead."""
    numbers: dict[int, int] = {}

    def walk(node: object) -> object:
        if isinstance(node, dict):
            return {key: (numbers.setdefault(value, len(numbers) + 1)
                          if key == "shared_object_id" else walk(value))
                    for key, value in node.items()}
        if isinstance(node, list):
            return [walk(value) for value in node]
        return node

    return walk(config)


def _rewrite_zip_deterministically(path: Path) -> None:
    """Keras stamps the save time and memory addresses into `.keras` files; remove them so
    equal models are equal bytes."""
    with zipfile.ZipFile(path) as source:
        entries = [(info, source.read(info.filename)) for info in source.infolist()]
    tmp = path.with_name(path.name + ".rewrite")
    with zipfile.ZipFile(tmp, "w") as target:
        for info, data in entries:
            if info.filename == "metadata.json":
                metadata = json.loads(data)
                metadata.pop("date_saved", None)
                data = json.dumps(metadata, sort_keys=True).encode()
            elif info.filename == "config.json":
                data = json.dumps(_renumber_shared_objects(json.loads(data))).encode()
            fixed = zipfile.ZipInfo(info.filename, date_time=FIXED_ZIP_TIME)
            fixed.compress_type = info.compress_type
            fixed.external_attr = info.external_attr
            target.writestr(fixed, data)
    os.replace(tmp, path)


def save_model(model: keras.Model, path: Path) -> None:
    """Keras format, byte-identical for identical models (so dvc.lock is stable)."""
    model.save(path)
    _rewrite_zip_deterministically(path)


def load_model(path: str | Path, stage_hint: str) -> keras.Model:
    path = require_file(path, stage_hint, "model")
    try:
        model = keras.saving.load_model(path, safe_mode=True)
    except Exception as error:  # Keras raises many types, of many lines, for a corrupt archive
        raise PipelineError(f"{path}: not a loadable Keras model ({first_line(error)}); "
                            f"run the {stage_hint} stage again") from None
    shapes = ([tuple(t.shape) for t in model.inputs], [tuple(t.shape) for t in model.outputs]) \
        if isinstance(model, keras.Model) else None
    if shapes is None or len(shapes[0]) != 1 or len(shapes[0][0]) != 2 \
            or shapes[0][0][0] is not None or not isinstance(shapes[0][0][1], int) \
            or shapes[1] != [(None, 1)]:
        raise PipelineError(f"{path}: expected a network of one (rows, features) input and "
                            f"one (rows, 1) output, got {printable(shapes)}; run the "
                            f"{stage_hint} stage again")
    return model


def predict_proba(model: keras.Model, features: np.ndarray, batch_size: int) -> np.ndarray:
    """Fraud probabilities, float64 1-D, at a large batch (Keras' default 32 is 26× slower)."""
    return model.predict(features, batch_size=batch_size, verbose=0).reshape(-1).astype(np.float64)


def predict_logit(model: keras.Model, features: np.ndarray, batch_size: int) -> np.ndarray:
    """The output layer's logit, float64 1-D: the hidden layer's activations (Dropout is
    the identity at inference) times the output kernel plus its bias, in float64, so no
    float32 sigmoid rounds small probabilities to 0."""
    output = model.layers[-1]
    hidden = keras.Model(model.inputs, output.input).predict(features, batch_size=batch_size,
                                                            verbose=0)
    kernel, bias = (np.asarray(weights, dtype=np.float64) for weights in output.get_weights())
    return (np.asarray(hidden, dtype=np.float64) @ kernel + bias).reshape(-1)
