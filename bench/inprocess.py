"""In-process measurements on a finished project copy (its scaled splits and models):

    python -m bench.inprocess epochs  --out epochs.json  [--epochs 10] [--tutorial-epochs 3]
    python -m bench.inprocess scoring --out scoring.json [--repeats 5]
    python -m bench.inprocess peer    --out peer.json
    python -m bench.inprocess all     --out all.json      (the three, one TensorFlow import)

Run with the project copy as the working directory (so `src` is the copy's).

`epochs`: seconds per epoch of each strategy, three ways, in one process, interleaved per
strategy so that they share the machine's load:
  * pipeline - the train stage's own code, called from src/ (`make_model` with
    steps_per_execution, `train_strategy`, validation and early stopping callback;
    patience = epochs, so every epoch runs);
  * tutorial - the tutorial's fit call (numpy arrays, batch 2048, one step per call; the
    per-element `sample_from_datasets` oversampler over shuffled, repeated per-class datasets);
  * floor - one `tf.function` running the whole epoch (data on the device, the same model,
    optimizer, batches of 2048, loss only) plus the validation loss: what Keras' per-step
    machinery and metrics cost on top of the arithmetic.
The tutorial and floor paths are frozen reference code, in bench/reference/tight_loop.py.
`scoring`: rows per second of `model.predict_proba` (Keras) and of the ONNX twin with
onnxruntime (src/fraud/serving/onnx_scoring.py), and their largest difference.
`peer`: scikit-learn's class-weighted logistic regression on the same splits (one fit, no
tuning: a floor beside the train_logreg stage of src/fraud/kinds/logreg.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench.reference import tight_loop
from fraud.core.models import STRATEGIES
from tests.project_files import scaled_file

PARAMS = "params.yaml"
MODELS = "models"  # the train stages' models/<strategy>.{keras,onnx}
INITIAL_WEIGHTS = f"{MODELS}/initial.weights.h5"  # the init_bias stage's, for every path
# Defaults of --epochs and --tutorial-epochs (also bench.run's, without --smoke).
EPOCHS = 10
TUTORIAL_EPOCHS = 3


def _params():
    from fraud.core.params import load_params
    return load_params(PARAMS)


def _split(name: str):
    from fraud.data.arrays import load_split
    return load_split(scaled_file(Path("."), f"{name}_features.npy"),
                      scaled_file(Path("."), f"{name}_labels.npy"))


def _steady(seconds: list[float]) -> float | None:
    """Median epoch time after the first (the first one traces the functions)."""
    rest = seconds[1:] or seconds
    return statistics.median(rest) if rest else None


def _timed(call: Callable[[], Any]) -> tuple[Any, float]:
    """What `call()` returns, and its wall seconds."""
    start = time.perf_counter()
    result = call()
    return result, time.perf_counter() - start


def _timed_calls(call: Callable[[], Any], repeats: int) -> tuple[list[float], Any]:
    """The wall seconds of `repeats` calls (at least one), and what the last one returned."""
    seconds, result = [], None
    for _ in range(max(repeats, 1)):
        result, wall = _timed(call)
        seconds.append(wall)
    return seconds, result


def _summary(seconds: list[float]) -> dict:
    return {"first_epoch_s": seconds[0] if seconds else None,
            "steady_epoch_s": _steady(seconds), "epochs": len(seconds),
            "total_s": sum(seconds), "epoch_s": seconds}


# --- the pipeline's code path --------------------------------------------------------------

def pipeline_epochs(strategy: str, params, train, val, epochs: int) -> dict:
    from fraud.training import fit as training
    from fraud.training import network as keras_model

    fixed = dataclasses.replace(params.train, epochs=epochs, patience=epochs)
    keras_model.set_determinism(params.seed)
    steps_per_execution = training.steps_per_execution(strategy, train[1], fixed)
    model = keras_model.make_model(train[0].shape[1], params.model,
                                   steps_per_execution=steps_per_execution)
    model.load_weights(INITIAL_WEIGHTS)
    keras_model.set_determinism(params.seed)
    result, fit_s = _timed(lambda: training.train_strategy(strategy, model, train, val, fixed,
                                                           params.seed))
    return {**_summary(result.epoch_seconds), "fit_s": fit_s,
            "val_prc_last": float(result.history["val_prc"].iloc[-1])}


def run_epochs(args: argparse.Namespace) -> dict:
    params = _params()
    train, val = _split("train"), _split("val")
    out: dict = {"epochs": args.epochs, "tutorial_epochs": args.tutorial_epochs,
                 "train_rows": int(len(train[1])), "val_rows": int(len(val[1])),
                 "batch_size": params.train.batch_size, "strategies": {}}
    for strategy in STRATEGIES:
        row = {}
        row["pipeline"] = pipeline_epochs(strategy, params, train, val, args.epochs)
        row["floor"] = _summary(tight_loop.floor_epochs(strategy, params, train, val,
                                                        args.epochs, INITIAL_WEIGHTS))
        if not args.skip_tutorial:
            tut_epochs = args.tutorial_epochs if strategy == "oversample" else args.epochs
            seconds, fit_s = tight_loop.tutorial_epochs(strategy, train, val, tut_epochs,
                                                        INITIAL_WEIGHTS)
            row["tutorial"] = {**_summary(seconds), "fit_s": fit_s}
        out["strategies"][strategy] = row
        print(f"{strategy}: " + ", ".join(f"{k} {v['steady_epoch_s']:.3f} s/epoch"
                                          for k, v in row.items()), file=sys.stderr, flush=True)
    return out


# --- scoring --------------------------------------------------------------------------------

def run_scoring(args: argparse.Namespace) -> dict:
    """Rows/s of the evaluate stage's scorer on every row of the data set (train + val +
    test): a first (cold) call that traces the predict function, then `repeats` timed calls."""
    import numpy as np

    params = _params()
    rows = np.concatenate([_split(name)[0] for name in ("train", "val", "test")])
    return {"batch_size": params.evaluate.batch_size, "rows": int(len(rows)),
            "strategies": {strategy: keras_scoring(strategy, rows, params.evaluate.batch_size,
                                                   args.repeats)
                           for strategy in STRATEGIES}}


def keras_scoring(strategy: str, rows, batch_size: int, repeats: int) -> dict:
    from fraud.training import network as keras_model

    model, load_s = _timed(lambda: keras_model.load_model(f"{MODELS}/{strategy}.keras",
                                                           "train"))

    def score():
        return keras_model.predict_proba(model, rows, batch_size)

    _, first_s = _timed(score)
    seconds, scores = _timed_calls(score, repeats)
    median = statistics.median(seconds)
    return {"load_s": load_s, "first_call_s": first_s, "seconds": seconds,
            "rows_per_s": len(rows) / median, "first_call_rows_per_s": len(rows) / first_s,
            "onnx": onnx_scoring(strategy, rows, repeats, scores)}


def onnx_scoring(strategy: str, rows, repeats: int, keras_scores) -> dict:
    """The same rows scored by the train stage's ONNX twin with onnxruntime (what the
    TensorFlow-free evaluate scores with), and the largest difference from Keras'
    `keras_scores`."""
    from fraud.serving.onnx_contract import NETWORK
    from fraud.serving.onnx_scoring import load_onnx

    model, load_s = _timed(lambda: load_onnx(f"{MODELS}/{strategy}.onnx", "train",
                                                      NETWORK))
    seconds, scores = _timed_calls(lambda: model(rows), repeats)
    return {"load_s": load_s, "seconds": seconds,
            "rows_per_s": len(rows) / statistics.median(seconds),
            "max_abs_diff_vs_keras": float(abs(scores - keras_scores).max())}


# --- the scikit-learn peer ------------------------------------------------------------------

def run_peer(args: argparse.Namespace) -> dict:
    """Class-weighted logistic regression (not the DAG's train_logreg, which tunes C on
    validation): one fit on train, the tutorial's metrics on test at 0.5."""
    try:
        from sklearn.linear_model import LogisticRegression

        from fraud.evaluation.metrics import binary_metrics
    except ImportError as error:
        return {"available": False, "error": str(error)}
    params = _params()
    train, test = _split("train"), _split("test")
    model = LogisticRegression(class_weight="balanced", max_iter=1000, random_state=params.seed)
    _, fit_s = _timed(lambda: model.fit(train[0], train[1].reshape(-1)))
    metrics, score_s = _timed(lambda: binary_metrics(test[1].reshape(-1),
                                                     model.predict_proba(test[0])[:, 1], 0.5))
    return {"available": True, "fit_s": fit_s, "score_s": score_s,
            "metrics": {k: float(v) for k, v in metrics.items()}}


def main(argv: list[str] | None = None) -> None:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("what", choices=("epochs", "scoring", "peer", "all"))
    cli.add_argument("--out", required=True, type=Path)
    cli.add_argument("--epochs", type=int, default=EPOCHS)
    cli.add_argument("--tutorial-epochs", type=int, default=TUTORIAL_EPOCHS,
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
