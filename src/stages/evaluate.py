"""Stage evaluate: scores the test split with each strategy's model; writes flat metrics
per strategy, the selected strategy's metrics, curves and figures.

The decision threshold (`evaluate.threshold`: a number or a rule) is chosen on the
validation split, per strategy; the test split only measures."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from src.stages._cli import parser, run, strategy_pattern

log = logging.getLogger("evaluate")


def main(argv: Sequence[str]) -> None:
    cli = parser(__doc__)
    cli.add_argument("--model", required=True, type=strategy_pattern, help="e.g. models/{strategy}.keras")
    for split in ("val", "test"):
        cli.add_argument(f"--{split}-features", required=True, type=Path)
        cli.add_argument(f"--{split}-labels", required=True, type=Path)
        cli.add_argument(f"--{split}-table", required=True, type=Path,
                         help="split table, for transaction amounts")
    cli.add_argument("--metrics", required=True, type=strategy_pattern, help="metrics/{strategy}.json")
    cli.add_argument("--selected-metrics", required=True, type=Path)
    cli.add_argument("--roc", required=True, type=strategy_pattern)
    cli.add_argument("--prc", required=True, type=strategy_pattern)
    cli.add_argument("--thresholds", required=True, type=strategy_pattern)
    cli.add_argument("--confusion-png", required=True, type=strategy_pattern)
    cli.add_argument("--roc-png", required=True, type=Path)
    cli.add_argument("--prc-png", required=True, type=Path)
    args = cli.parse_args(argv)

    import numpy as np

    from src.fraud import metrics as MX
    from src.fraud.files import outputs, remove_outputs, write_json
    from src.fraud.params import STRATEGIES, TRAIN_STAGES, load_params

    per_strategy = {name: [pattern.format(strategy=name) for pattern in
                           (args.metrics, args.roc, args.prc, args.thresholds,
                            args.confusion_png)] for name in STRATEGIES}
    remove_outputs(args.selected_metrics, args.roc_png, args.prc_png,
                   *(path for paths in per_strategy.values() for path in paths))

    params = load_params(args.params)
    p = params.evaluate

    from src.fraud import figures
    from src.fraud import model as M
    from src.fraud.data import read_table
    from src.fraud.train import load_split

    val = load_split(args.val_features, args.val_labels)
    test = load_split(args.test_features, args.test_labels)
    amounts = {"val": None, "test": None}
    if p.cost_fn == "amount":
        for split in amounts:
            table = read_table(getattr(args, f"{split}_table"), "split")
            amounts[split] = np.exp(table["Log Amount"].to_numpy()) - params.clean.eps

    results: dict[str, dict[str, float]] = {}
    roc_curves, pr_curves = {}, {}
    with outputs() as out:
        for name in STRATEGIES:
            metrics_path, roc_path, prc_path, thresholds_path, cm_path = per_strategy[name]
            model = M.load_model(args.model.format(strategy=name), TRAIN_STAGES[name])
            # One predict call for both splits: one traced function, not one per shape.
            scores = M.predict_proba(model, np.concatenate([val[0], test[0]]), p.batch_size)
            val_p, test_p = scores[:len(val[0])], scores[len(val[0]):]
            table = MX.threshold_table(val[1], val_p, amounts["val"])
            threshold = MX.choose_threshold(p.threshold, table, p.target_recall, p.cost_fp,
                                            p.cost_fn)
            result = MX.binary_metrics(test[1], test_p, threshold)
            val_counts = MX.confusion(val[1], val_p, threshold)
            result.update({
                "threshold": threshold,
                "val_recall": val_counts["tp"] / max(val_counts["tp"] + val_counts["fn"], 1),
                "val_precision": (val_counts["tp"] / (val_counts["tp"] + val_counts["fp"])
                                  if val_counts["tp"] + val_counts["fp"] else 0.0),
                "cost": MX.cost_at(test[1], test_p, threshold, p.cost_fp, p.cost_fn,
                                   amounts["test"]),
            })
            results[name] = result
            write_json(out.path(metrics_path), result)
            roc_curves[name] = MX.roc_points(test[1], test_p, p.curve_points)
            pr_curves[name] = MX.pr_points(test[1], test_p, p.curve_points)
            roc_curves[name].to_csv(out.path(roc_path), index=False)
            pr_curves[name].to_csv(out.path(prc_path), index=False)
            MX.threshold_curve(table, p.cost_fp, p.cost_fn, p.curve_points).to_csv(
                out.path(thresholds_path), index=False)
            figures.confusion_matrix_png(out.path(cm_path), result, name, threshold)
            log.info("%s: threshold %.4g; test precision %.3f recall %.3f auc %.4f prc %.4f "
                     "(tp %d fp %d fn %d)", name, threshold, result["precision"],
                     result["recall"], result["auc"], result["prc"], result["tp"],
                     result["fp"], result["fn"])
        selected = params.train.strategy
        write_json(out.path(args.selected_metrics), {"strategy": selected, **results[selected]})
        figures.roc_png(out.path(args.roc_png), roc_curves)
        figures.pr_png(out.path(args.prc_png), pr_curves)


if __name__ == "__main__":
    run(main)
