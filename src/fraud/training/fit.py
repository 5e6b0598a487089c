"""Training: the three imbalance strategies, early stopping, per-epoch history.

Speed notes (measured on the 2-core machines, see bench/NOTES.md): a whole epoch runs as
one `steps_per_execution` call (1.8× faster, identical weights); oversampling draws whole
balanced batches at once instead of the tutorial's per-element tf.data sampler (~20× faster).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..core.params import TrainParams, check_monitor
from ..errors import PipelineError
from .balance import OVERSAMPLE_BATCH_FRAUD_FRACTION, class_weights
from .network import keras, make_metrics, tf

log = logging.getLogger(__name__)

# Metrics where lower is better; early stopping needs the direction.
LOWER_IS_BETTER = ("loss", "cross_entropy", "brier", "fp", "fn")


def oversample_steps(labels: np.ndarray, batch_size: int) -> int:
    """An oversampling 'epoch' shows each training negative once: ceil(2·neg / batch)."""
    neg = int(len(labels) - labels.sum())
    return math.ceil(2 * neg / batch_size)


def balanced_batches(features: np.ndarray, labels: np.ndarray, batch_size: int,
                     seed: int) -> tf.data.Dataset:
    """Endless batches, each row a fraud with probability OVERSAMPLE_BATCH_FRAUD_FRACTION (½),
    drawn whole and seeded.

    Vectorised replacement for the tutorial's per-element `sample_from_datasets`: per batch,
    one random draw for the labels and one `tf.gather` per class. Stateless random ops keyed
    on (seed, batch number) make the stream identical on every run.
    """
    positives = tf.constant(features[labels == 1])
    negatives = tf.constant(features[labels == 0])
    n_pos = int(positives.shape[0])
    n_neg = int(negatives.shape[0])

    def draw(step: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        key = tf.stack([tf.constant(seed, tf.int64), step * 3])
        is_fraud = (tf.random.stateless_uniform([batch_size], seed=key)
                    < OVERSAMPLE_BATCH_FRAUD_FRACTION)
        pos_rows = tf.random.stateless_uniform([batch_size], seed=key + [0, 1], minval=0,
                                               maxval=n_pos, dtype=tf.int32)
        neg_rows = tf.random.stateless_uniform([batch_size], seed=key + [0, 2], minval=0,
                                               maxval=n_neg, dtype=tf.int32)
        rows = tf.where(is_fraud[:, None], tf.gather(positives, pos_rows),
                        tf.gather(negatives, neg_rows))
        return rows, tf.cast(is_fraud[:, None], tf.float32)

    return tf.data.Dataset.counter().map(draw).prefetch(2)


def shuffled_batches(features: np.ndarray, labels: np.ndarray, batch_size: int, seed: int,
                     weights: dict[int, float] | None = None) -> tf.data.Dataset:
    """Endless batches of the training split, the data on the device once: epoch k is a
    permutation drawn by a stateless shuffle keyed on (seed, k), cut into batches in order
    (the last one shorter), with each row's class weight as its sample weight if `weights`.

    Why not Keras' array input: its adapter builds a new `tf.data` iterator per epoch that
    embeds the whole split (and draws the order with a stateful shuffle); this one is built
    once per fit. ~35 % less time per epoch (bench/NOTES.md), the same draws on every run.
    """
    rows = len(labels)
    x = tf.constant(features)
    y = tf.constant(np.asarray(labels, dtype=np.float32).reshape(-1, 1))
    steps = steps_for(rows, batch_size)
    row_weights = None
    if weights is not None:
        row_weights = tf.constant(np.where(np.asarray(labels).reshape(-1) == 1, weights[1],
                                           weights[0]).astype(np.float32))

    def epoch(number: tf.Tensor) -> tf.data.Dataset:
        order = tf.random.experimental.stateless_shuffle(
            tf.range(rows), seed=tf.stack([tf.constant(seed, tf.int64), number]))
        return tf.data.Dataset.range(steps).map(
            lambda step: order[step * batch_size:tf.minimum((step + 1) * batch_size, rows)])

    def gather(batch: tf.Tensor) -> tuple[tf.Tensor, ...]:
        if row_weights is None:
            return tf.gather(x, batch), tf.gather(y, batch)
        return tf.gather(x, batch), tf.gather(y, batch), tf.gather(row_weights, batch)

    return tf.data.Dataset.counter().flat_map(epoch).map(gather).prefetch(2)


class ValidationMetrics(keras.callbacks.Callback):
    """Adds the validation figures to each epoch's logs from ONE forward pass over the whole
    validation split: `val_loss`, `val_<name>` for every metric of `network.make_metrics()`
    (Keras metrics, updated in one compiled call) and `val_ap`, scikit-learn's exact average
    precision (Keras' `val_prc` bins scores at 200 thresholds, which with ~80 validation
    frauds picks other epochs: docs/pipeline.md, Training).

    Why not Keras' `validation_data`: its evaluation loop builds two `tf.data` iterators per
    epoch, each embedding the whole split, and ran a second forward pass for `val_ap`; this
    costs one pass and a few milliseconds (bench/NOTES.md). The figures are the same (counts
    are exact, losses and means agree to float32 rounding). Must come before EarlyStopping
    in the callback list: Keras hands every callback the same logs dict, in order."""

    def __init__(self, features: np.ndarray, labels: np.ndarray, with_metrics: bool = True
                 ) -> None:
        super().__init__()
        # Tensors once, not numpy per epoch: the conversion cost more than the forward pass.
        self.features = tf.constant(features)
        self.labels = np.asarray(labels).reshape(-1)
        self.with_metrics = with_metrics
        self._targets = tf.constant(self.labels.reshape(-1, 1).astype(np.float32))
        self._loss = keras.losses.BinaryCrossentropy()
        self._metrics = make_metrics() if with_metrics else []
        self._figures = tf.function(self._compute, reduce_retracing=True)

    def _compute(self, features: tf.Tensor) -> dict[str, tf.Tensor]:
        scores = self.model(features, training=False)
        figures = {"loss": self._loss(self._targets, scores), "scores": scores}
        for metric in self._metrics:
            metric.reset_state()
            metric.update_state(self._targets, scores)
            figures[metric.name] = metric.result()
        return figures

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        figures = self._figures(self.features)
        scores = figures.pop("scores").numpy().reshape(-1)
        if logs is None:
            return
        logs.update({f"val_{name}": float(value) for name, value in figures.items()})
        if self.with_metrics:
            from sklearn.metrics import average_precision_score

            # NaN scores (a diverged fit) make NaN figures, which check_finite_losses reports
            logs["val_ap"] = float(average_precision_score(self.labels, scores)) \
                if np.isfinite(scores).all() else float("nan")


class StopOnNaN(keras.callbacks.Callback):
    """Keras' TerminateOnNaN, without its line on stdout: the stage's error says it."""

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.model.stop_training = True


class EpochTimer(keras.callbacks.Callback):
    """Logs one short line per epoch and keeps the epoch wall times (for the benchmark)."""

    def __init__(self, label: str, monitor: str) -> None:
        super().__init__()
        self.label = label
        self.monitor = monitor
        self.seconds: list[float] = []
        self._start = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.seconds.append(time.perf_counter() - self._start)
        logs = logs or {}
        # A loss-only fit (init_bias' comparison) has no monitored metric: say nothing of it
        # rather than print `nan`.
        monitored = (f" {self.monitor} {logs[self.monitor]:.4f}"
                     if self.monitor in logs and self.monitor not in ("loss", "val_loss") else "")
        log.info("%s epoch %d: loss %.5f val_loss %.5f%s (%.2f s)", self.label, epoch + 1,
                 logs.get("loss", float("nan")), logs.get("val_loss", float("nan")),
                 monitored, self.seconds[-1])


@dataclass(frozen=True)
class TrainResult:
    history: pd.DataFrame      # one row per epoch: epoch (1-based), every metric, train and val
    best_epoch: int            # 1-based; its weights are the model's final weights
    epoch_seconds: list[float]

    @property
    def best_val_metrics(self) -> dict[str, float]:
        row = self.history.loc[self.history["epoch"] == self.best_epoch].iloc[0]
        return {k[len("val_"):]: float(v) for k, v in row.items() if k.startswith("val_")}


def monitor_mode(monitor: str) -> str:
    name = monitor.removeprefix("val_")
    return "min" if name in LOWER_IS_BETTER else "max"


def history_frame(history: dict[str, list[float]]) -> pd.DataFrame:
    frame = pd.DataFrame({k: np.asarray(v, dtype=np.float64) for k, v in history.items()})
    frame.insert(0, "epoch", np.arange(1, len(frame) + 1))
    train_cols = sorted(c for c in frame.columns if c != "epoch" and not c.startswith("val_"))
    val_cols = sorted(c for c in frame.columns if c.startswith("val_"))
    return frame[["epoch", *train_cols, *val_cols]]


def best_epoch(history: pd.DataFrame, monitor: str) -> int:
    """The first epoch with the best monitored value (EarlyStopping's strict improvement)."""
    values = history[monitor].to_numpy()
    index = int(np.argmin(values) if monitor_mode(monitor) == "min" else np.argmax(values))
    return int(history["epoch"].iloc[index])


def fit(model: keras.Model, train: tuple[np.ndarray, np.ndarray],
        val: tuple[np.ndarray, np.ndarray], params: TrainParams, label: str,
        early_stopping: bool = True,
        class_weight: dict[int, float] | None = None,
        dataset: tf.data.Dataset | None = None, steps_per_epoch: int | None = None,
        seed: int = 0) -> TrainResult:
    """Keras fit with validation and early stopping that always ends on the best weights.

    Trains on `dataset` (`steps_per_epoch` batches an epoch) or, without one, on the
    training arrays shuffled each epoch by `seed` (shuffled_batches, class weights as
    sample weights).

    Keras 3's EarlyStopping restores the best weights at the end of training also when
    training runs to the last epoch (the TF 2.x bug tensorflow/tensorflow#35634 is gone);
    tests check it.
    """
    monitor = params.monitor
    if early_stopping:
        check_monitor(monitor)  # TrainParams built in code skip parse_params' check
    timer = EpochTimer(label, monitor)
    # The validation figures first: the callbacks after it (EarlyStopping, the timer's log
    # line, History) read what it adds. A loss-only fit (init_bias' comparison) gets val_loss.
    callbacks: list[keras.callbacks.Callback] = [
        ValidationMetrics(val[0], val[1], with_metrics=early_stopping)]
    if early_stopping:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor=monitor, mode=monitor_mode(monitor), patience=params.patience,
            restore_best_weights=True, verbose=0))
    callbacks += [timer, StopOnNaN()]
    if dataset is None:
        dataset = shuffled_batches(train[0], train[1], params.batch_size, seed, class_weight)
        steps_per_epoch = steps_for(len(train[1]), params.batch_size)
    history = model.fit(dataset, steps_per_epoch=steps_per_epoch, shuffle=False,
                        epochs=params.epochs, callbacks=callbacks, verbose=0)
    frame = history_frame(history.history)
    check_finite_losses(frame, label, float(model.optimizer.learning_rate.numpy()))
    best = best_epoch(frame, monitor) if early_stopping else int(frame["epoch"].iloc[-1])
    return TrainResult(history=frame, best_epoch=best, epoch_seconds=timer.seconds)


def check_finite_losses(history: pd.DataFrame, label: str, learning_rate: float) -> None:
    """A NaN or infinite loss stops the stage in one line, before it writes anything (the
    metrics would not be JSON, the weights useless). TerminateOnNaN ended the fit there."""
    losses = history[[c for c in ("loss", "val_loss") if c in history]].to_numpy(np.float64)
    bad = ~np.isfinite(losses).all(axis=1)
    if bad.any() or len(history) == 0:
        epoch = int(history["epoch"].iloc[int(np.argmax(bad))]) if bad.any() else 1
        raise PipelineError(f"{label}: the loss became NaN or infinite at epoch {epoch} "
                            f"(model.learning_rate = {learning_rate:g}); lower "
                            "model.learning_rate, or check the inputs for extreme values")


def steps_for(rows: int, batch_size: int) -> int:
    return math.ceil(rows / batch_size)


def initial_loss(model: keras.Model, data: tuple[np.ndarray, np.ndarray]) -> float:
    """Loss before any training: ~0.69 with a zero output bias, far less with the careful one.
    One forward pass over the whole split (`evaluate` would trace a test function for it)."""
    x, y = data
    targets = np.asarray(y, dtype=np.float32).reshape(-1, 1)
    return float(keras.losses.BinaryCrossentropy()(targets, model(x, training=False)))


def expected_initial_loss(labels: np.ndarray) -> float:
    """-p0·log(p0) - (1-p0)·log(1-p0): the loss of a model that predicts the base rate p0."""
    p0 = float(labels.mean())
    return float(-p0 * np.log(p0) - (1 - p0) * np.log(1 - p0))


def bias_comparison_frame(zero: TrainResult, careful: TrainResult) -> pd.DataFrame:
    """The tutorial's 'confirm that the bias fix helps', as one table for a plot."""
    return pd.DataFrame({
        "epoch": zero.history["epoch"],
        "zero_bias_loss": zero.history["loss"],
        "zero_bias_val_loss": zero.history["val_loss"],
        "careful_bias_loss": careful.history["loss"],
        "careful_bias_val_loss": careful.history["val_loss"],
    })


def train_strategy(strategy: str, model: keras.Model, train: tuple[np.ndarray, np.ndarray],
                   val: tuple[np.ndarray, np.ndarray], params: TrainParams, seed: int
                   ) -> TrainResult:
    """Trains `model` (already holding the initial weights) with one imbalance strategy."""
    if strategy == "baseline":
        return fit(model, train, val, params, strategy, seed=seed)
    if strategy == "weighted":
        weights = class_weights(train[1])
        log.info("class weights: %s", {k: round(v, 4) for k, v in weights.items()})
        return fit(model, train, val, params, strategy, class_weight=weights, seed=seed)
    if strategy == "oversample":
        # Balanced batches: the careful bias would now be wrong; 50/50 means bias 0.
        model.layers[-1].bias.assign(np.zeros(1, dtype=np.float32))
        steps = params.oversample_steps_per_epoch or oversample_steps(train[1], params.batch_size)
        log.info("oversampling: %d balanced batches of %d per epoch", steps, params.batch_size)
        return fit(model, train, val, params, strategy,
                   dataset=balanced_batches(train[0], train[1], params.batch_size, seed),
                   steps_per_epoch=steps)
    raise PipelineError(f"unknown strategy {strategy!r}")


def steps_per_execution(strategy: str, train_labels: np.ndarray, params: TrainParams) -> int:
    """One compiled call per epoch: measured 1.8× faster than one step per call, same weights."""
    if strategy == "oversample":
        return params.oversample_steps_per_epoch or oversample_steps(train_labels,
                                                                    params.batch_size)
    return steps_for(len(train_labels), params.batch_size)
