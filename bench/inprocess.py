"""In-process measurements on a finished project copy (its scaled splits and models):

    python -m bench.inprocess epochs  --out epochs.json  [--epochs 10] [--tutorial-epochs 3]
    python -m bench.inprocess scoring --out scoring.json [--repeats 5]
    python -m bench.inprocess peer    --out peer.json
    python -m bench.inprocess all     --out all.json      (the three, one TensorFlow import)

Run with the project copy as the working directory (so `src` is the copy's).

`epochs`: seconds per epoch of each strategy, three ways, in one process, interleaved per
strategy so that they share the machine's load:
  * pipeline - the train stage's own code (`make_model` with steps_per_execution,
    `train_strategy`, validation and early stopping callback; patience = epochs, so every
    epoch runs);
  * tutorial - the tutorial's fit call (numpy arrays, batch 2048, one step per call; the
    per-element `sample_from_datasets` oversampler over shuffled, repeated per-class datasets);
  * floor - one `tf.function` running the whole epoch (data on the device, the same model,
    optimizer, batches of 2048, loss only) plus the validation loss: what Keras' per-step
    machinery and metrics cost on top of the arithmetic.
`scoring`: rows per second of `model.predict_proba` (Keras) and of the ONNX twin with
onnxruntime (src/fraud/onnx_scoring.py), and their largest difference.
`peer`: scikit-learn's class-weighted logistic regression on the same splits (one fit, no
tuning: a floor beside the train_logreg stage of src/fraud/peer.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from src.fraud.params import STRATEGIES

SCALED = Path("data/scaled")


def _split(name: str):
    from src.fraud.train import load_split
    return load_split(SCALED / f"{name}_features.npy", SCALED / f"{name}_labels.npy")


def _steady(seconds: list[float]) -> float | None:
    """Median epoch time after the first (the first one traces the functions)."""
    rest = seconds[1:] or seconds
    return statistics.median(rest) if rest else None


def _summary(seconds: list[float]) -> dict:
    return {"first_epoch_s": seconds[0] if seconds else None,
            "steady_epoch_s": _steady(seconds), "epochs": len(seconds),
            "total_s": sum(seconds), "epoch_s": seconds}


# --- the pipeline's code path --------------------------------------------------------------

def pipeline_epochs(strategy: str, params, train, val, epochs: int) -> dict:
    from src.fraud import model as keras_model
    from src.fraud import train as training

    fixed = dataclasses.replace(params.train, epochs=epochs, patience=epochs)
    keras_model.set_determinism(params.seed)
    steps_per_execution = training.steps_per_execution(strategy, train[1], fixed)
    model = keras_model.make_model(train[0].shape[1], params.model,
                                   steps_per_execution=steps_per_execution)
    model.load_weights("models/initial.weights.h5")
    keras_model.set_determinism(params.seed)
    start = time.perf_counter()
    result = training.train_strategy(strategy, model, train, val, fixed, params.seed)
    fit_s = time.perf_counter() - start
    return {**_summary(result.epoch_seconds), "fit_s": fit_s,
            "val_prc_last": float(result.history["val_prc"].iloc[-1])}


# --- the tutorial's code path --------------------------------------------------------------

def tutorial_epochs(strategy: str, params, train, val, epochs: int) -> dict:
    """The tutorial's fit for one strategy (see bench/tutorial.py for the whole notebook)."""
    from bench import tutorial

    keras = tutorial.keras()
    neg, pos = int((train[1] == 0).sum()), int((train[1] == 1).sum())
    model = tutorial.make_model(train[0].shape[1], tutorial.metrics())
    model.load_weights("models/initial.weights.h5")
    timer = tutorial.EpochTimes()
    stop = keras.callbacks.EarlyStopping(monitor="val_prc", patience=epochs, mode="max",
                                         restore_best_weights=True)
    y = train[1].reshape(-1, 1)
    vy = val[1].reshape(-1, 1)
    start = time.perf_counter()
    if strategy == "oversample":
        model.layers[-1].bias.assign([0])
        data = tutorial.resampled_dataset(train[0], y)
        val_ds = tutorial.val_dataset(val[0], vy)
        model.fit(data, epochs=epochs, steps_per_epoch=math.ceil(2.0 * neg / tutorial.BATCH_SIZE),
                  callbacks=[stop, timer], validation_data=val_ds, verbose=0)
    else:
        total = neg + pos
        weights = ({0: (1 / neg) * total / 2.0, 1: (1 / pos) * total / 2.0}
                   if strategy == "weighted" else None)
        model.fit(train[0], y, batch_size=tutorial.BATCH_SIZE, epochs=epochs,
                  callbacks=[stop, timer], validation_data=(val[0], vy), class_weight=weights,
                  verbose=0)
    return {**_summary(timer.seconds), "fit_s": time.perf_counter() - start}


# --- the floor: one tf.function per epoch ----------------------------------------------------

def floor_epochs(strategy: str, params, train, val, epochs: int) -> dict:
    from src.fraud import model as keras_model
    from src.fraud import train as training

    tf, keras = keras_model.tf, keras_model.keras
    batch = params.train.batch_size
    keras_model.set_determinism(params.seed)
    model = keras_model.make_model(train[0].shape[1], params.model)
    model.load_weights("models/initial.weights.h5")
    optimizer = keras.optimizers.Adam(learning_rate=params.model.learning_rate)
    optimizer.build(model.trainable_variables)  # no variables may be created in the loop
    loss_fn = keras.losses.BinaryCrossentropy()
    x = tf.constant(train[0])
    y = tf.constant(train[1].reshape(-1, 1))
    vx = tf.constant(val[0])
    vy = tf.constant(val[1].reshape(-1, 1))
    rows = int(x.shape[0])
    weights = training.class_weights(train[1])
    row_weight = tf.where(y[:, 0] > 0.5, weights[1], weights[0])
    if strategy == "oversample":
        model.layers[-1].bias.assign([0.0])
        steps = (params.train.oversample_steps_per_epoch
                 or training.oversample_steps(train[1], batch))
        positives = tf.constant(train[0][train[1] == 1])
        negatives = tf.constant(train[0][train[1] == 0])
    else:
        steps = training.steps_for(rows, batch)

    def step(xb, yb, wb):
        with tf.GradientTape() as tape:
            loss = loss_fn(yb, model(xb, training=True), sample_weight=wb)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    @tf.function
    def epoch(number):
        total = tf.constant(0.0)
        order = tf.random.experimental.stateless_shuffle(
            tf.range(rows), seed=tf.stack([tf.constant(params.seed, tf.int64), number]))
        for i in tf.range(steps):
            if strategy == "oversample":
                key = tf.stack([tf.constant(params.seed, tf.int64), tf.cast(i, tf.int64) * 3])
                fraud = tf.random.stateless_uniform([batch], seed=key) < 0.5
                pos_rows = tf.random.stateless_uniform(
                    [batch], seed=key + [0, 1], maxval=positives.shape[0], dtype=tf.int32)
                neg_rows = tf.random.stateless_uniform(
                    [batch], seed=key + [0, 2], maxval=negatives.shape[0], dtype=tf.int32)
                xb = tf.where(fraud[:, None], tf.gather(positives, pos_rows),
                              tf.gather(negatives, neg_rows))
                yb = tf.cast(fraud[:, None], tf.float32)
                wb = None
            else:
                rows_i = order[i * batch:tf.minimum((i + 1) * batch, rows)]
                xb, yb = tf.gather(x, rows_i), tf.gather(y, rows_i)
                wb = tf.gather(row_weight, rows_i) if strategy == "weighted" else None
            total += step(xb, yb, wb)
        val_loss = loss_fn(vy, model(vx, training=False))
        return total / tf.cast(steps, tf.float32), val_loss

    seconds = []
    for number in range(epochs):
        start = time.perf_counter()
        _, val_loss = epoch(tf.constant(number, tf.int64))
        float(val_loss)
        seconds.append(time.perf_counter() - start)
    return _summary(seconds)


def run_epochs(args: argparse.Namespace) -> dict:
    from src.fraud.params import load_params

    params = load_params("params.yaml")
    train, val = _split("train"), _split("val")
    out: dict = {"epochs": args.epochs, "tutorial_epochs": args.tutorial_epochs,
                 "train_rows": int(len(train[1])), "val_rows": int(len(val[1])),
                 "batch_size": params.train.batch_size, "strategies": {}}
    for strategy in STRATEGIES:
        row = {}
        row["pipeline"] = pipeline_epochs(strategy, params, train, val, args.epochs)
        row["floor"] = floor_epochs(strategy, params, train, val, args.epochs)
        if not args.skip_tutorial:
            tut_epochs = args.tutorial_epochs if strategy == "oversample" else args.epochs
            row["tutorial"] = tutorial_epochs(strategy, params, train, val, tut_epochs)
        out["strategies"][strategy] = row
        print(f"{strategy}: " + ", ".join(f"{k} {v['steady_epoch_s']:.3f} s/epoch"
                                          for k, v in row.items()), file=sys.stderr, flush=True)
    return out


# --- scoring --------------------------------------------------------------------------------

def run_scoring(args: argparse.Namespace) -> dict:
    """Rows/s of the evaluate stage's scorer on every row of the data set (train + val +
    test): a first (cold) call that traces the predict function, then `repeats` timed calls."""
    import numpy as np

    from src.fraud import model as keras_model
    from src.fraud.params import load_params

    params = load_params("params.yaml")
    rows = np.concatenate([_split(name)[0] for name in ("train", "val", "test")])
    out: dict = {"batch_size": params.evaluate.batch_size, "rows": int(len(rows)),
                 "strategies": {}}
    for strategy in STRATEGIES:
        start = time.perf_counter()
        model = keras_model.load_model(f"models/{strategy}.keras", "train")
        load_s = time.perf_counter() - start
        start = time.perf_counter()
        keras_model.predict_proba(model, rows, params.evaluate.batch_size)
        first_s = time.perf_counter() - start
        seconds = []
        for _ in range(max(args.repeats, 1)):
            start = time.perf_counter()
            keras_model.predict_proba(model, rows, params.evaluate.batch_size)
            seconds.append(time.perf_counter() - start)
        median = statistics.median(seconds)
        out["strategies"][strategy] = {"load_s": load_s, "first_call_s": first_s,
                                       "seconds": seconds, "rows_per_s": len(rows) / median,
                                       "first_call_rows_per_s": len(rows) / first_s,
                                       "onnx": onnx_scoring(strategy, rows, args.repeats)}
    return out


def onnx_scoring(strategy: str, rows, repeats: int) -> dict:
    """The same rows scored by the train stage's ONNX twin with onnxruntime (what the
    TensorFlow-free evaluate scores with), and the largest difference from Keras."""
    from src.fraud import model as keras_model
    from src.fraud.onnx_scoring import load_onnx

    start = time.perf_counter()
    model = load_onnx(f"models/{strategy}.onnx", "train")
    load_s = time.perf_counter() - start
    seconds, scores = [], None
    for _ in range(max(repeats, 1)):
        start = time.perf_counter()
        scores = model(rows)
        seconds.append(time.perf_counter() - start)
    network = keras_model.load_model(f"models/{strategy}.keras", "train")
    keras_scores = keras_model.predict_proba(network, rows, 8192)
    return {"load_s": load_s, "seconds": seconds,
            "rows_per_s": len(rows) / statistics.median(seconds),
            "max_abs_diff_vs_keras": float(abs(scores - keras_scores).max())}


# --- the scikit-learn peer ------------------------------------------------------------------

def run_peer(args: argparse.Namespace) -> dict:
    """Class-weighted logistic regression (not the DAG's train_logreg, which tunes C on
    validation): one fit on train, the tutorial's metrics on test at 0.5."""
    from src.fraud.params import load_params

    try:
        from sklearn.linear_model import LogisticRegression

        from src.fraud.metrics import binary_metrics
    except ImportError as error:
        return {"available": False, "error": str(error)}
    params = load_params("params.yaml")
    train, test = _split("train"), _split("test")
    model = LogisticRegression(class_weight="balanced", max_iter=1000, random_state=params.seed)
    start = time.perf_counter()
    model.fit(train[0], train[1].reshape(-1))
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    metrics = binary_metrics(test[1].reshape(-1), model.predict_proba(test[0])[:, 1], 0.5)
    score_s = time.perf_counter() - start
    return {"available": True, "fit_s": fit_s, "score_s": score_s,
            "metrics": {k: float(v) for k, v in metrics.items()}}


def main(argv: list[str] | None = None) -> None:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("what", choices=("epochs", "scoring", "peer", "all"))
    cli.add_argument("--out", required=True, type=Path)
    cli.add_argument("--epochs", type=int, default=10)
    cli.add_argument("--tutorial-epochs", type=int, default=3,
                     help="epochs of the tutorial's (slow) oversampler")
    cli.add_argument("--skip-tutorial", action="store_true")
    cli.add_argument("--repeats", type=int, default=5)
    args = cli.parse_args(argv)
    if args.what == "all":  # one process, one TensorFlow import
        result = {"epochs": run_epochs(args), "scoring": run_scoring(args),
                  "peer": run_peer(args)}
    else:
        result = {"epochs": run_epochs, "scoring": run_scoring, "peer": run_peer}[args.what](args)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
