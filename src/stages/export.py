"""Stage export: the champion strategy's network with the preprocessing (log of Amount,
the training split's standardisation, clipping) attached as Keras ops, so the exported model
takes raw transactions; and a JSON model card beside it."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from src.stages._cli import parser, run, strategy_pattern

log = logging.getLogger("export")


def main(argv: Sequence[str]) -> None:
    cli = parser(__doc__)
    cli.add_argument("--model", required=True, type=strategy_pattern,
                     help="trained networks, e.g. models/{strategy}.keras")
    cli.add_argument("--selected-metrics", required=True, type=Path,
                     help="the chosen model's metrics, with its name (metrics/evaluate.json)")
    cli.add_argument("--scaler", required=True, type=Path, help="scaler statistics (JSON)")
    cli.add_argument("--raw", required=True, type=Path,
                     help="the raw training CSV (its sha256 goes into the card)")
    cli.add_argument("--out", required=True, type=Path, help="the exported model (.keras)")
    cli.add_argument("--card", required=True, type=Path, help="the model card (JSON)")
    args = cli.parse_args(argv)

    from src.fraud.errors import PipelineError
    from src.fraud.files import outputs, read_json_file, remove_outputs, write_json
    from src.fraud.params import STRATEGIES, TRAIN_STAGES, load_params

    remove_outputs(args.out, args.card)
    params = load_params(args.params)
    metrics = read_json_file(args.selected_metrics, "evaluate")
    strategy = metrics.get("model")
    if strategy not in STRATEGIES:
        raise PipelineError(f"{args.selected_metrics}: model {strategy!r} cannot be exported: "
                            f"only the networks ({', '.join(STRATEGIES)}) are")
    network_path = Path(args.model.format(strategy=strategy))

    from src.fraud import export as E
    from src.fraud import model as M

    stats = E.read_scaler(args.scaler, params.scale.clip)
    raw_sha256 = E.file_sha256(args.raw, "raw training CSV")
    network = M.load_model(network_path, TRAIN_STAGES[strategy])
    E.check_network(network, network_path)
    detector = E.build_detector(network, stats, params.clean.eps)
    card = E.model_card(strategy=strategy, threshold=metrics["threshold"], metrics=metrics,
                        stats=stats, eps=params.clean.eps, raw_csv=args.raw,
                        raw_sha256=raw_sha256, network_path=network_path,
                        network_sha256=E.file_sha256(network_path, "model"),
                        model_file=args.out.name)
    with outputs() as out:
        M.save_model(detector, out.path(args.out))
        write_json(out.path(args.card), card)
    log.info("%s: %s model, threshold %g, input %s -> %s", args.out, strategy,
             card["threshold"], ", ".join(E.INPUT_COLUMNS[:2]) + ", …, Amount", args.card)


if __name__ == "__main__":
    run(main)
