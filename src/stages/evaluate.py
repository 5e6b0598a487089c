"""Stage evaluate: chooses the model to report and ship — the one `train.strategy` names,
or with `auto` the candidate with the best validation figure (`evaluate.select_by`) — and
draws the tutorial's ROC and precision-recall figures of every model.

Reads each model's metrics and curves (written by evaluate_model), not the
splits: switching `train.strategy` reruns only this stage and export."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from fraud.core.cli import model_pattern, parser, run

log = logging.getLogger("evaluate")


def main(argv: Sequence[str]) -> None:
    cli = parser(__doc__)
    cli.add_argument("--models", required=True, type=lambda text: tuple(text.split(",")),
                     help="the evaluated models, comma-separated")
    cli.add_argument("--metrics", required=True, type=model_pattern,
                     help="each model's metrics, e.g. metrics/{model}.json")
    cli.add_argument("--roc", required=True, type=model_pattern, help="plots/roc/{model}.csv")
    cli.add_argument("--prc", required=True, type=model_pattern, help="plots/prc/{model}.csv")
    cli.add_argument("--selected-metrics", required=True, type=Path)
    cli.add_argument("--roc-png", required=True, type=Path)
    cli.add_argument("--prc-png", required=True, type=Path)
    args = cli.parse_args(argv)

    from fraud.core.files import outputs, read_json_file, remove_outputs, write_json

    remove_outputs(args.selected_metrics, args.roc_png, args.prc_png)

    import pandas as pd

    from fraud.core.params import load_params
    from fraud.evaluation import choice, figures

    params = load_params(args.params)
    per_model = {name: read_json_file(args.metrics.format(model=name), "evaluate_model")
                 for name in args.models}
    selection = choice.choose_model(per_model, params.train.strategy,
                                    params.evaluate.candidates, params.evaluate.select_by)
    chosen = selection["model"]
    curves = {kind: {name: pd.read_csv(pattern.format(model=name)) for name in args.models}
              for kind, pattern in (("roc", args.roc), ("prc", args.prc))}
    with outputs() as out:
        write_json(out.path(args.selected_metrics),
                   choice.selected_metrics(per_model, selection, params.train.strategy),
                   sort_keys=False)
        figures.roc_png(out.path(args.roc_png), curves["roc"], chosen)
        figures.pr_png(out.path(args.prc_png), curves["prc"], chosen)
    log.info("%s, chosen by %s (%s %.4f); test prc %.4f [%.4f, %.4f]", chosen,
             selection["chosen_by"], selection["select_by"],
             per_model[chosen][selection["select_by"]],
             per_model[chosen]["prc"], per_model[chosen]["prc_low"], per_model[chosen]["prc_high"])


if __name__ == "__main__":
    run(main)
