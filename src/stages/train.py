"""Stages train_baseline / train_weighted / train_resampled: one strategy each, from the
shared initial weights, with early stopping on the validation split.

Besides the trained network (`.keras`, and `.onnx` for the evaluate stages to score without
TensorFlow), each writes its deployable detector: the network with the preprocessing
attached (the raw input columns in), as `.keras` and `.onnx`. TensorFlow is loaded here
anyway; the export stage then only copies the chosen one.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fraud.core.cli import add_split_arguments, parser, run

log = logging.getLogger("train")


def build_parser() -> argparse.ArgumentParser:
    cli = parser(__doc__)
    cli.add_argument("--strategy", required=True,
                     help="baseline | weighted | oversample (resampled is the same)")
    add_split_arguments(cli, "train", "val")
    cli.add_argument("--initial-weights", required=True, type=Path)
    cli.add_argument("--scaler", required=True, type=Path,
                     help="scaler statistics (JSON), for the detector's preprocessing")
    cli.add_argument("--model-out", required=True, type=Path, help="trained model (.keras)")
    cli.add_argument("--onnx-out", required=True, type=Path,
                     help="the same network as ONNX (scaled features in)")
    cli.add_argument("--detector-out", required=True, type=Path,
                     help="the detector, raw transactions in (.keras)")
    cli.add_argument("--detector-onnx-out", required=True, type=Path,
                     help="the same detector as ONNX")
    cli.add_argument("--history-out", required=True, type=Path, help="per-epoch metrics (CSV)")
    cli.add_argument("--metrics-out", required=True, type=Path, help="best epoch's val metrics")
    return cli


def main(argv: Sequence[str]) -> None:
    args = build_parser().parse_args(argv)

    from fraud.core.files import remove_outputs
    from fraud.core.models import STRATEGIES
    from fraud.core.params import load_params, normalise_strategy
    from fraud.errors import require_file
    from fraud.serving.contract import read_scaler

    # Stale outputs go first, so that any failure (bad params too) leaves none behind.
    remove_outputs(args.model_out, args.onnx_out, args.detector_out, args.detector_onnx_out,
                   args.history_out, args.metrics_out)
    strategy = normalise_strategy(args.strategy, "--strategy", STRATEGIES)
    params = load_params(args.params)
    stats = read_scaler(args.scaler, params.scale.clip)  # a stale scaler fails before training

    # The inputs are read and checked before TensorFlow's ~5 s import: bad ones fail at once.
    train, val = _load_splits(args, len(stats.features))
    require_file(args.initial_weights, "init_bias")

    from fraud.training import fit as training
    from fraud.training import network as keras_model

    model = _initial_model(args, strategy, params, train)
    keras_model.set_determinism(params.seed)
    result = training.train_strategy(strategy, model, train, val, params.train, params.seed)
    _log_result(strategy, result)
    _write_outputs(args, strategy, params, stats, model, result)


def _load_splits(args: argparse.Namespace, width: int) -> tuple[Any, Any]:
    from fraud.data.arrays import load_split
    from fraud.errors import PipelineError

    train = load_split(args.train_features, args.train_labels, width)
    val = load_split(args.val_features, args.val_labels, width)
    if val[0].shape[1] != train[0].shape[1]:
        raise PipelineError(f"{args.val_features}: {val[0].shape[1]} features, but the "
                            f"training split has {train[0].shape[1]}")
    return train, val


def _initial_model(args: argparse.Namespace, strategy: str, params: Any, train: Any) -> Any:
    """The compiled network with init_bias' weights (the same start for every strategy)."""
    from fraud.errors import PipelineError
    from fraud.training import fit as training
    from fraud.training import network as keras_model

    keras_model.set_determinism(params.seed)
    steps_per_execution = training.steps_per_execution(strategy, train[1], params.train)
    model = keras_model.make_model(train[0].shape[1], params.model,
                                   steps_per_execution=steps_per_execution)
    try:
        model.load_weights(args.initial_weights)
    except Exception as error:  # h5py / Keras raise many types for a mismatched file
        raise PipelineError(f"{args.initial_weights}: cannot load into this model ({error}); "
                            "rerun init_bias with the same model.* params") from None
    return model


def _log_result(strategy: str, result: Any) -> None:
    epochs = len(result.history)
    seconds = sum(result.epoch_seconds)
    log.info("%s: %d epochs in %.1f s (%.3f s/epoch after the first); best epoch %d, val %s",
             strategy, epochs, seconds,
             (sum(result.epoch_seconds[1:]) / max(epochs - 1, 1)), result.best_epoch,
             {k: round(v, 4) for k, v in result.best_val_metrics.items()
              if k in ("precision", "recall", "auc", "prc")})


def _write_outputs(args: argparse.Namespace, strategy: str, params: Any, stats: Any,
                   model: Any, result: Any) -> None:
    from fraud.core.files import outputs, write_json
    from fraud.serving import detector
    from fraud.training import network as keras_model

    with outputs() as out:
        keras_model.save_model(model, out.path(args.model_out))
        detector.save_all(model, strategy, stats, params.clean.eps,
                          network_onnx_path=out.path(args.onnx_out),
                          detector_path=out.path(args.detector_out),
                          detector_onnx_path=out.path(args.detector_onnx_out))
        result.history.to_csv(out.path(args.history_out), index=False)
        write_json(out.path(args.metrics_out), {
            "strategy": strategy, "best_epoch": result.best_epoch,
            "epochs_run": len(result.history),
            **{f"val_{k}": v for k, v in result.best_val_metrics.items()},
        })


if __name__ == "__main__":
    run(main)
