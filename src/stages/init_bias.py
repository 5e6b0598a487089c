"""Stage init_bias: careful output bias, the initial weights every strategy starts from, and
the zero-vs-careful bias comparison (loss curves)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fraud.core.cli import add_split_arguments, parser, run

log = logging.getLogger("init_bias")


def build_parser() -> argparse.ArgumentParser:
    cli = parser(__doc__)
    add_split_arguments(cli, "train", "val")
    cli.add_argument("--weights-out", required=True, type=Path,
                     help="initial weights (.weights.h5)")
    cli.add_argument("--metrics-out", required=True, type=Path)
    cli.add_argument("--curves-out", required=True, type=Path, help="loss per epoch (CSV)")
    return cli


def main(argv: Sequence[str]) -> None:
    args = build_parser().parse_args(argv)

    from fraud.core.files import outputs, remove_outputs, write_json
    from fraud.core.params import load_params

    # Stale outputs go first, so that any failure (bad params too) leaves none behind.
    remove_outputs(args.weights_out, args.metrics_out, args.curves_out)
    params = load_params(args.params)

    from fraud.data.arrays import load_split

    # Read and checked before TensorFlow's ~5 s import: bad inputs fail at once.
    train = load_split(args.train_features, args.train_labels)
    val = load_split(args.val_features, args.val_labels)

    from fraud.training import fit as training
    from fraud.training import network as keras_model

    bias = keras_model.careful_bias(train[1])
    steps = training.steps_for(len(train[1]), params.train.batch_size)
    keras_model.set_determinism(params.seed)
    model = keras_model.make_model(train[0].shape[1], params.model, output_bias=bias,
                                   steps_per_execution=steps)
    loss_careful = training.initial_loss(model, train)
    initial = model.get_weights()
    model.layers[-1].bias.assign([0.0])
    loss_zero = training.initial_loss(model, train)
    log.info("careful bias %.4f; initial loss %.4f with it, %.4f with a zero bias "
             "(expected %.4f)", bias, loss_careful, loss_zero,
             training.expected_initial_loss(train[1]))
    results = _compare_biases(model, initial, bias, train, val, params)

    # Saved from a never-trained model: the checkpoint holds no optimizer state, so every
    # strategy starts from the same weights and a fresh Adam.
    fresh = keras_model.make_model(train[0].shape[1], params.model)
    fresh.set_weights(initial)
    with outputs() as out:
        fresh.save_weights(out.path(args.weights_out))
        write_json(out.path(args.metrics_out), {
            "initial_bias": bias,
            "initial_loss_careful_bias": loss_careful,
            "initial_loss_zero_bias": loss_zero,
            "expected_initial_loss": training.expected_initial_loss(train[1]),
            "final_val_loss_careful_bias": float(results["careful"].history["val_loss"].iloc[-1]),
            "final_val_loss_zero_bias": float(results["zero"].history["val_loss"].iloc[-1]),
        })
        training.bias_comparison_frame(results["zero"], results["careful"]).to_csv(
            out.path(args.curves_out), index=False)


def _compare_biases(model: Any, initial: list[Any], bias: float, train: Any, val: Any,
                    params: Any) -> dict[str, Any]:
    """The same start but for the output bias (zero, then careful), trained for
    init_bias.compare_epochs each: the fit results by name."""
    from fraud.training import fit as training
    from fraud.training import network as keras_model

    compare = dataclasses.replace(params.train, epochs=params.init_bias.compare_epochs)
    log.info("zero vs careful bias: %d epochs each, losses only (no metrics are compiled, "
             "so no early stopping)", compare.epochs)
    # The same model for both fits (one traced train function), so everything that a fit
    # changes is put back before each: the weights, Adam's moments and step count, and the
    # dropout layer's random state. The careful run then differs from the zero run by its
    # bias alone, as two fresh models would.
    optimizer = model.optimizer
    optimizer.build(model.trainable_variables)
    state = [*model.variables, *optimizer.variables]
    start = [variable.numpy() for variable in state]
    results = {}
    for name, output_bias in (("zero", 0.0), ("careful", bias)):
        for variable, value in zip(state, start, strict=True):
            variable.assign(value)
        model.set_weights(initial)
        model.layers[-1].bias.assign([output_bias])
        keras_model.set_determinism(params.seed)
        results[name] = training.fit(model, train, val, compare, f"{name} bias",
                                     early_stopping=False, seed=params.seed)
    return results


if __name__ == "__main__":
    run(main)
