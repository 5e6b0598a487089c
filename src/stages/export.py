"""Stage export: ships the detector of the model evaluate chose (metrics/evaluate.json), as
`.keras` and `.onnx`, with a JSON model card naming both files and their checksums.

The train stages build the detectors (they have TensorFlow loaded); this stage copies the
chosen pair after checking it, with onnxruntime and no TensorFlow, so it starts in well
under a second."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from src.fraud.cli import model_pattern, parser, run

log = logging.getLogger("export")


def main(argv: Sequence[str]) -> None:
    cli = parser(__doc__)
    cli.add_argument("--choice", required=True, type=Path,
                     help="evaluate's choice and its metrics (metrics/evaluate.json)")
    cli.add_argument("--keras", required=True, type=model_pattern,
                     help="the detectors, e.g. models/detector/{model}.keras")
    cli.add_argument("--onnx", required=True, type=model_pattern,
                     help="the same as ONNX, e.g. models/detector/{model}.onnx")
    cli.add_argument("--raw", required=True, type=Path,
                     help="the raw training CSV (its sha256 goes into the card)")
    cli.add_argument("--out-keras", required=True, type=Path, help="the shipped .keras model")
    cli.add_argument("--out-onnx", required=True, type=Path, help="the shipped .onnx model")
    cli.add_argument("--card", required=True, type=Path, help="the model card (JSON)")
    args = cli.parse_args(argv)

    import shutil

    from src.fraud.errors import PipelineError
    from src.fraud.files import file_sha256, outputs, remove_outputs, write_json
    from src.fraud.models import TRAIN_STAGES
    from src.fraud.serving import contract, export
    from src.fraud.serving.onnx_contract import DETECTOR
    from src.fraud.serving.onnx_scoring import load_onnx

    remove_outputs(args.out_keras, args.out_onnx, args.card)
    model, choice = export.read_choice(args.choice)
    stage = TRAIN_STAGES[model]
    sources = {"keras": Path(args.keras.format(model=model)),
               "onnx": Path(args.onnx.format(model=model))}
    detector = load_onnx(sources["onnx"], stage, DETECTOR)
    info = contract.read_detector_metadata(detector.metadata, str(sources["onnx"]), stage)
    keras_sha256 = file_sha256(sources["keras"], f"detector (run the {stage} stage)")
    if info.strategy != model or info.keras_sha256 != keras_sha256:
        raise PipelineError(f"{sources['keras']} and {sources['onnx']} were not written by "
                            f"one run of {stage}; run it again (dvc repro {stage})")
    shipped = {"keras": args.out_keras, "onnx": args.out_onnx}
    files = {"onnx": (args.out_onnx.name, file_sha256(sources["onnx"])),
             "keras": (args.out_keras.name, keras_sha256)}
    card = export.model_card(model=model, choice=choice, info=info, files=files,
                             sources={fmt: str(path) for fmt, path in sources.items()},
                             raw_csv=args.raw,
                             raw_sha256=file_sha256(args.raw, "raw training CSV"))
    with outputs() as out:
        for fmt, target in shipped.items():
            shutil.copyfile(sources[fmt], out.path(target))
        write_json(out.path(args.card), card)
    log.info("%s, %s: the %s detector, threshold %g -> %s", args.out_onnx, args.out_keras,
             model, card["threshold"], args.card)


if __name__ == "__main__":
    run(main)
