"""Stages train_logreg / train_gbdt (and any scikit-learn kind of src/fraud/kinds): a peer of
the Keras models, fitted on the scaled train split and tuned on the validation split; saved
with skops, and as a detector (raw transactions in, probability out: the network's ONNX
contract) so that export can ship it. No TensorFlow."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from fraud.core.cli import add_split_arguments, parser, run

log = logging.getLogger("train_peer")


def main(argv: Sequence[str]) -> None:
    from fraud.core.models import PEERS

    cli = parser(__doc__)
    cli.add_argument("--model", required=True, choices=PEERS)
    add_split_arguments(cli, "train", "val")
    cli.add_argument("--scaler", required=True, type=Path,
                     help="scaler statistics (JSON), for the detector's preprocessing")
    cli.add_argument("--model-out", required=True, type=Path, help="fitted model (.skops)")
    cli.add_argument("--detector-onnx-out", required=True, type=Path,
                     help="the detector: raw input columns in, probability out (.onnx)")
    cli.add_argument("--metrics-out", required=True, type=Path,
                     help="what tuning chose, and the validation average precision (JSON)")
    args = cli.parse_args(argv)

    from fraud.core.files import outputs, remove_outputs, write_json
    from fraud.core.params import load_params
    from fraud.data.arrays import load_split
    from fraud.kinds import _scikit
    from fraud.kinds.registry import kind
    from fraud.serving.contract import read_scaler, save_onnx
    from fraud.serving.peer_onnx import peer_detector

    # Stale outputs go first, so that any failure (bad params too) leaves none behind.
    remove_outputs(args.model_out, args.detector_onnx_out, args.metrics_out)
    params = load_params(args.params)
    stats = read_scaler(args.scaler, params.scale.clip)  # a stale scaler fails before fitting
    width = len(stats.features)  # the scaler's features are the arrays' columns
    train = load_split(args.train_features, args.train_labels, width)
    val = load_split(args.val_features, args.val_labels, width)
    model = kind(args.model)
    section = getattr(params, model.section)
    if stats.categories and model.native_categorical:  # one column of level codes each
        train, val = ((stats.codes(split[0]), split[1]) for split in (train, val))
        fitted = model.fit(train, val, section, params.seed,  # type: ignore[call-arg]
                           categorical=len(stats.categories))
    else:
        fitted = model.fit(train, val, section, params.seed)
    log.info("%s: %s", args.model, {k: v for k, v in fitted.summary.items()
                                    if k not in ("model", "c_grid", "grid_val_ap")})
    with outputs() as out:
        _scikit.save_model(fitted.model, out.path(args.model_out))
        save_onnx(peer_detector(fitted.model, stats, params.clean.eps),
                  out.path(args.detector_onnx_out))
        # Not the fit time: the file must be the same bytes on every run (dvc.lock).
        write_json(out.path(args.metrics_out),
                   {k: v for k, v in fitted.summary.items() if k != "fit_seconds"})


if __name__ == "__main__":
    run(main)
