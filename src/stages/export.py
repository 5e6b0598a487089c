"""Stage export: ships the model evaluate chose (metrics/evaluate.json) as ONE `.onnx` file:
its detector (raw transactions in) with its calibrator (fitted on validation by
evaluate_model) appended as float64 nodes, so every user reads calibrated probabilities;
and a JSON model card (calibration, decision rule, metrics, checksums, usage).

Any of the five models ships. No TensorFlow: the train stages build the detectors; this
stage checks the chosen one, appends the calibration, checks the result as predict will load
it, and writes the card. The card also carries what monitoring compares new data with (the
training split's quantile bins per raw column and of the shipped model's scores on it, which
the reference stage built for every model: this stage checks it was built from the files it
ships, and names the shipped file's sha256 in it; fraud monitor and the monitor stage read it)
and the model's most important columns (from the importance stage's table)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from fraud.cli import model_pattern, parser, run

log = logging.getLogger("export")


def main(argv: Sequence[str]) -> None:
    cli = parser(__doc__)
    cli.add_argument("--choice", required=True, type=Path,
                     help="evaluate's choice and its metrics (metrics/evaluate.json)")
    cli.add_argument("--onnx", required=True, type=model_pattern,
                     help="the detectors, e.g. models/detector/{model}.onnx")
    cli.add_argument("--calibration", required=True, type=model_pattern,
                     help="the calibrators, e.g. models/calibration/{model}.json")
    cli.add_argument("--metrics", required=True, type=model_pattern,
                     help="each model's metrics, e.g. metrics/{model}.json (calibration "
                          "figures for the card)")
    cli.add_argument("--raw", required=True, type=Path,
                     help="the raw training CSV (its sha256 goes into the card)")
    cli.add_argument("--reference", required=True, type=model_pattern,
                     help="each model's monitoring reference, e.g. "
                          "models/reference/{model}.json")
    cli.add_argument("--importance", required=True, type=model_pattern,
                     help="each model's importance table, e.g. plots/importance/{model}.csv")
    cli.add_argument("--out-onnx", required=True, type=Path, help="the shipped .onnx model")
    cli.add_argument("--card", required=True, type=Path, help="the model card (JSON)")
    args = cli.parse_args(argv)

    from dataclasses import replace

    from fraud.evaluation import importance
    from fraud.files import file_sha256, outputs, read_json_file, remove_outputs, write_json
    from fraud.monitoring.profile import read_model_reference
    from fraud.params import load_params
    from fraud.serving import contract, export
    from fraud.serving.onnx_contract import DETECTOR
    from fraud.serving.onnx_scoring import load_onnx

    remove_outputs(args.out_onnx, args.card)
    params = load_params(args.params)
    model, choice = export.read_choice(args.choice)
    decision = export.shipped_decision(choice, params.evaluate, args.choice)
    source = Path(args.onnx.format(model=model))
    calibration_path = Path(args.calibration.format(model=model))
    shipped, calibrator, info = export.shipped_model(model, source, calibration_path)
    metrics = read_json_file(Path(args.metrics.format(model=model)), "evaluate_model")
    importance_path = Path(args.importance.format(model=model))
    top_features = importance.card_entry(
        importance.read_table(importance_path, "importance", info.inputs), str(importance_path))
    sources = {"detector": (str(source), file_sha256(source)),
               "calibration": (str(calibration_path), file_sha256(calibration_path))}
    reference = read_model_reference(Path(args.reference.format(model=model)),
                                     {name: sha for name, (_, sha) in sources.items()},
                                     "reference", info.inputs)
    with outputs() as out:
        written = out.path(args.out_onnx)
        contract.save_onnx(shipped, written)
        load_onnx(written, "export", DETECTOR)  # as predict will load it
        shipped_sha256 = file_sha256(written)
        card = export.model_card(
            model=model, choice=choice, info=info,
            shipped=(args.out_onnx.name, shipped_sha256),
            sources=sources,
            calibration=export.calibration_card(calibrator, metrics, str(calibration_path)),
            decision=decision, raw_csv=args.raw,
            raw_sha256=file_sha256(args.raw, "raw training CSV"),
            reference=replace(reference, model_sha256=shipped_sha256),
            importance=top_features, data=params.data)
        write_json(out.path(args.card), card)
    log.info("%s: the %s detector, calibration %s, flagged %s -> %s", args.out_onnx, model,
             calibrator.method, decision.describe(), args.card)


if __name__ == "__main__":
    run(main)
