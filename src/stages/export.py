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

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fraud.core.cli import model_pattern, parser, run

log = logging.getLogger("export")

# The `{model}` patterns, one file per model: the chosen model's are read.
PER_MODEL = ("onnx", "calibration", "metrics", "reference", "importance")


def build_parser() -> argparse.ArgumentParser:
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
    return cli


def card_inputs(files: dict[str, Path], info: Any
                ) -> tuple[dict[str, Any], dict[str, Any], dict[str, tuple[str, str]], Any]:
    """What the card takes from the chosen model's other files: its metrics (calibration
    figures), its top columns, the checksums of the detector and calibrator it is built
    from, and its monitoring reference (which must have been built from those two files)."""
    from fraud.core.files import file_sha256, read_json_file
    from fraud.evaluation import importance
    from fraud.monitoring.profile import read_model_reference

    metrics = read_json_file(files["metrics"], "evaluate_model")
    top_features = importance.card_entry(
        importance.read_table(files["importance"], "importance",
                              [*info.inputs, *info.stats().categorical]),
        str(files["importance"]))
    sources = {"detector": (str(files["onnx"]), file_sha256(files["onnx"])),
               "calibration": (str(files["calibration"]), file_sha256(files["calibration"]))}
    reference = read_model_reference(files["reference"],
                                     {name: sha for name, (_, sha) in sources.items()},
                                     "reference", [*info.inputs, *info.stats().categorical])
    return metrics, top_features, sources, reference


def write_outputs(args: argparse.Namespace, shipped: Any, reference: Any,
                  card: dict[str, Any]) -> None:
    """The .onnx file, loaded back as predict will load it, and the card (`card`: the
    arguments of export.model_card but those naming the shipped file, added here: its name
    and sha256, in the card and in the monitoring `reference`)."""
    from dataclasses import replace

    from fraud.core.files import file_sha256, outputs, write_json
    from fraud.serving import contract, export
    from fraud.serving.onnx_contract import DETECTOR
    from fraud.serving.onnx_scoring import load_onnx

    with outputs() as out:
        written = out.path(args.out_onnx)
        contract.save_onnx(shipped, written)
        load_onnx(written, "export", DETECTOR)  # as predict will load it
        shipped_sha256 = file_sha256(written)
        model_card = export.model_card(
            **card, shipped=(args.out_onnx.name, shipped_sha256), raw_csv=args.raw,
            raw_sha256=file_sha256(args.raw, "raw training CSV"),
            reference=replace(reference, model_sha256=shipped_sha256))
        write_json(out.path(args.card), model_card)


def main(argv: Sequence[str]) -> None:
    args = build_parser().parse_args(argv)

    from fraud.core.files import remove_outputs
    from fraud.core.params import load_params
    from fraud.serving import export

    remove_outputs(args.out_onnx, args.card)
    params = load_params(args.params)
    model, choice = export.read_choice(args.choice)
    decision = export.shipped_decision(choice, params.evaluate, args.choice)
    files = {name: Path(getattr(args, name).format(model=model)) for name in PER_MODEL}
    shipped, calibrator, info = export.shipped_model(model, files["onnx"], files["calibration"])
    metrics, top_features, sources, reference = card_inputs(files, info)
    card = {"model": model, "choice": choice, "info": info, "sources": sources,
            "calibration": export.calibration_card(calibrator, metrics,
                                                   str(files["calibration"])),
            "decision": decision, "importance": top_features, "data": params.data}
    write_outputs(args, shipped, reference, card)
    log.info("%s: the %s detector, calibration %s, flagged %s -> %s", args.out_onnx, model,
             calibrator.method, decision.describe(), args.card)


if __name__ == "__main__":
    run(main)
