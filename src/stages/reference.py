"""Stage reference: what monitoring compares new data with, for each model that may ship.

Per model, the training split's profile: quantile bins of every raw input column and of
the calibrated probability that model would ship with (its detector with its calibrator
appended, exactly as export builds it), scored on the training rows with
ONNX Runtime (no TensorFlow, no scikit-learn). Built here, once per training, rather than in
export, which reruns on every `dvc exp run -S train.strategy=...` and only copies the
chosen model's reference into the card (reading and scoring the ~180k training rows costs
about a second). Each file names the sha256 of the detector and calibration it scored, so
export can tell a stale one."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from fraud.core.cli import model_pattern, parser, run

log = logging.getLogger("reference")


def main(argv: Sequence[str]) -> None:
    cli = parser(__doc__)
    cli.add_argument("--models", required=True, type=lambda text: tuple(text.split(",")),
                     help="the models that may ship, comma-separated")
    cli.add_argument("--onnx", required=True, type=model_pattern,
                     help="the detectors, e.g. models/detector/{model}.onnx")
    cli.add_argument("--calibration", required=True, type=model_pattern,
                     help="the calibrators, e.g. models/calibration/{model}.json")
    cli.add_argument("--train", required=True, type=Path,
                     help="the training split's table (its raw columns are profiled)")
    cli.add_argument("--out", required=True, type=model_pattern,
                     help="each model's reference, e.g. models/reference/{model}.json")
    args = cli.parse_args(argv)

    from fraud.core.files import outputs, remove_outputs, write_json
    from fraud.core.models import require_models

    require_models(args.models, "--models")
    written = {name: Path(args.out.format(model=name)) for name in args.models}
    remove_outputs(*written.values())

    from fraud.core.declaration import learn_levels
    from fraud.core.params import load_params
    from fraud.data.columns import read_inputs, table_layout
    from fraud.monitoring import profile
    from fraud.serving.export import shipped_scorer

    params = load_params(args.params)
    layout = table_layout(args.train, "split", params.data)
    train = read_inputs(args.train, "split", layout)
    # A categorical column over its training levels plus an unseen bin: learnt from the same
    # split by the same function as the scale stage's, so they are scaler.json's levels.
    n = len(layout.inputs)
    levels = {column: learn_levels(str(args.train), column, train[:, n + i],
                                   params.data.max_levels)
              for i, column in enumerate(layout.categorical)}
    columns = profile.column_profiles(train, names=layout.model_inputs, levels=levels)
    references = {}
    for name in args.models:
        score, built_from = shipped_scorer(name, Path(args.onnx.format(model=name)),
                                           Path(args.calibration.format(model=name)))
        references[name] = profile.model_reference_json(
            profile.build_reference(train, score(train), columns=columns,
                                    names=layout.model_inputs),
            built_from)
    for path in written.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    with outputs() as out:
        for name, data in references.items():
            write_json(out.path(written[name]), data)
    log.info("%s: %d training rows, %d models", args.out, len(train), len(references))


if __name__ == "__main__":
    run(main)
