"""Stage evaluate_model@<model>: the model's calibration (fitted on validation), its
threshold (chosen on validation), its test metrics on the calibrated probabilities with 95 %
bootstrap intervals, curves, reliability curve and confusion matrix. The only stage that
reads the test split, and only to report. No TensorFlow: models give their logit through
ONNX Runtime (networks, final Sigmoid cut) or scikit-learn (peers' decision_function)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from src.fraud.cli import parser, run

log = logging.getLogger("evaluate_model")


def main(argv: Sequence[str]) -> None:
    cli = parser(__doc__)
    cli.add_argument("--name", required=True, help="the model's name (metrics and plots)")
    cli.add_argument("--model", required=True, type=Path, help=".onnx, .skops or .keras")
    cli.add_argument("--trained-by", required=True, help="the stage that writes --model")
    for split in ("val", "test"):
        cli.add_argument(f"--{split}-features", required=True, type=Path)
        cli.add_argument(f"--{split}-labels", required=True, type=Path)
        cli.add_argument(f"--{split}-table", required=True, type=Path,
                         help="split table, for transaction amounts")
    cli.add_argument("--data-summary", required=True, type=Path,
                     help="the split stage's counts (metrics/data.json): the prior's beta")
    for output in ("metrics", "roc", "prc", "thresholds", "confusion-png", "calibrator",
                   "reliability"):
        cli.add_argument(f"--{output}", required=True, type=Path)
    args = cli.parse_args(argv)

    from src.fraud.files import outputs, read_json_file, remove_outputs, write_json

    remove_outputs(args.metrics, args.roc, args.prc, args.thresholds, args.confusion_png,
                   args.calibrator, args.reliability)

    from src.fraud.data.arrays import load_split
    from src.fraud.data.prepare import read_table
    from src.fraud.evaluation import calibration, choice, figures, metrics, model_evaluation
    from src.fraud.params import load_params

    params = load_params(args.params)
    settings = params.evaluate
    logit_of, balanced = choice.load_logit_scorer(args.model, args.trained_by,
                                                  settings.batch_size)
    beta = model_evaluation.prior_beta(args.name, read_json_file(args.data_summary, "split"),
                                 balanced)
    splits = {}
    for split in ("val", "test"):
        features, labels = load_split(getattr(args, f"{split}_features"),
                                      getattr(args, f"{split}_labels"))
        amounts = None
        if settings.cost_fn == "amount":
            amounts = read_table(getattr(args, f"{split}_table"), "split")["Amount"].to_numpy()
        splits[split] = model_evaluation.Logits(labels, logit_of(features), amounts)
    evaluation = model_evaluation.evaluate_calibrated(splits["val"], splits["test"], params, beta)
    result, test, val_table = evaluation.metrics, evaluation.test, evaluation.val_table
    with outputs() as out:
        write_json(out.path(args.metrics), result)
        write_json(out.path(args.calibrator),
                   {**evaluation.calibrator.to_dict(), "model": args.name})
        calibration.reliability(test.labels, test.scores, params.calibrate.bins, "width"
                                ).to_csv(out.path(args.reliability), index=False)
        metrics.roc_points(test.labels, test.scores, settings.curve_points).to_csv(
            out.path(args.roc), index=False)
        metrics.pr_points(test.labels, test.scores, settings.curve_points).to_csv(
            out.path(args.prc), index=False)
        metrics.threshold_curve(val_table, settings.cost_fp, settings.cost_fn,
                                settings.curve_points).to_csv(out.path(args.thresholds),
                                                              index=False)
        figures.confusion_matrix_png(out.path(args.confusion_png), result, args.name,
                                     result["threshold"])
    log.info("%s: calibration %s; test log loss %.5f (raw %.5f), ECE %.5f (raw %.5f), "
             "expected frauds %.1f (raw %.1f) of %d", args.name, result["calibration"],
             result["loss"], result["loss_raw"], result["ece"], result["ece_raw"],
             result["expected_frauds"], result["expected_frauds_raw"], result["frauds"])
    log.info("%s: threshold %.4g (val recall %.3f); test precision %.3f recall %.3f "
             "prc %.4f [%.4f, %.4f] auc %.4f (tp %d fp %d fn %d)", args.name,
             result["threshold"], result["val_recall"], result["precision"], result["recall"],
             result["prc"], result["prc_low"], result["prc_high"], result["auc"], result["tp"],
             result["fp"], result["fn"])


if __name__ == "__main__":
    run(main)
