"""Stage evaluate_model: for each model, its calibration (fitted on validation), its threshold
(chosen on validation), its test metrics on the calibrated probabilities with 95 % bootstrap
intervals, curves, reliability curve and confusion matrix. The only stage that reads the test
split, and only to report. No TensorFlow: every model gives its logit through ONNX Runtime,
a network on the scaled features (final Sigmoid cut), a peer as its detector ships (raw
transactions in: the same preprocessing, float64 trees or linear model, sigmoid cut); a
`.skops` or `.keras` file is scored by scikit-learn or Keras instead.

One process for every model: the imports (scikit-learn, matplotlib) cost far more than
evaluating a model (bench/NOTES.md), so five stages paid them five times. Each model's outputs
are its own files (`{model}` in the output patterns)."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fraud.core.cli import model_pattern, parser, run

log = logging.getLogger("evaluate_model")

# Output option -> what it holds; each is a path pattern with {model}.
OUTPUTS = {"metrics": "test metrics with intervals (JSON)", "roc": "ROC curve (CSV)",
           "prc": "precision-recall curve (CSV)",
           "thresholds": "validation precision/recall/cost per threshold (CSV)",
           "confusion-png": "confusion matrix at the chosen threshold (PNG)",
           "calibrator": "the fitted calibrator (JSON)",
           "reliability": "reliability curve on the test split (CSV)"}


def model_file(value: str) -> tuple[str, Path]:
    """An argparse type: NAME=PATH, a model's name and the file that holds it."""
    name, separator, path = value.partition("=")
    if not separator or not name or not path:
        raise argparse.ArgumentTypeError(f"{value!r}: expected NAME=PATH, e.g. "
                                         "baseline=models/baseline.onnx")
    return name, Path(path)


def build_parser() -> argparse.ArgumentParser:
    cli = parser(__doc__)
    cli.add_argument("--model", required=True, action="append", type=model_file,
                     dest="models", metavar="NAME=PATH",
                     help="a model to evaluate (.onnx: a network or a detector; .skops or "
                          ".keras); repeat for each")
    for split in ("val", "test"):
        cli.add_argument(f"--{split}-features", required=True, type=Path)
        cli.add_argument(f"--{split}-labels", required=True, type=Path)
        cli.add_argument(f"--{split}-table", required=True, type=Path,
                         help="split table: raw transactions (for detectors) and amounts")
    cli.add_argument("--data-summary", required=True, type=Path,
                     help="the split stage's counts (metrics/data.json): the prior's beta")
    for output, what in OUTPUTS.items():
        cli.add_argument(f"--{output}", required=True, type=model_pattern,
                         help=f"{what}, e.g. a path with {{model}}")
    return cli


def main(argv: Sequence[str]) -> None:
    args = build_parser().parse_args(argv)

    from fraud.core.files import outputs, read_json_file, remove_outputs
    from fraud.core.models import require_models

    names = [name for name, _ in args.models]
    require_models(names, "--model")
    paths = {name: {output: Path(getattr(args, output.replace("-", "_")).format(model=name))
                    for output in OUTPUTS} for name in names}
    remove_outputs(*(path for files in paths.values() for path in files.values()))

    from fraud.core.params import load_params
    from fraud.data.arrays import load_split

    params = load_params(args.params)
    splits = {split: _Split(*load_split(getattr(args, f"{split}_features"),
                                        getattr(args, f"{split}_labels")),
                            getattr(args, f"{split}_table"))
              for split in ("val", "test")}
    data_summary = read_json_file(args.data_summary, "split")

    # Every model is evaluated before anything is written: all files or none.
    results = {name: _evaluate(name, path, splits, data_summary, params)
               for name, path in args.models}
    for evaluation in results.values():
        evaluation.metrics.update(_card_precision(splits, evaluation, params))
    with outputs() as out:
        for name, evaluation in results.items():
            _write(out, paths[name], name, evaluation, params)


class _Split:
    """One split as the models take it: the scaled features, or (read once, when a detector
    asks) the raw transactions of its table, the same rows in the same order."""

    def __init__(self, features: Any, labels: Any, table: Path) -> None:
        self.features, self.labels, self.table = features, labels, table
        self._raw: Any = None
        self._amount = -1
        self._cards: Any = None

    def raw(self, params: Any) -> Any:
        """The inputs of the table, in the declared order (the amount last, if any)."""
        if self._raw is None:
            from fraud.data.columns import read_inputs, table_layout
            from fraud.errors import PipelineError

            layout = table_layout(self.table, "split", params.data)
            self._raw = read_inputs(self.table, "split", layout)
            self._amount = len(layout.inputs) - 1  # the amount: the last numeric input
            if len(self._raw) != len(self.labels):
                raise PipelineError(f"{self.table}: {len(self._raw):,} rows, but its labels "
                                    f"have {len(self.labels):,}; run the split and scale "
                                    "stages again")
        return self._raw

    def cards_and_times(self, params: Any) -> tuple[Any, Any] | None:
        """The card (the first declared entity) and time of each row, or None without."""
        from fraud.data.columns import read_columns, read_key_column, table_layout

        if self._cards is None:  # read once per split, for every model
            layout = table_layout(self.table, "split", params.data)
            self._cards = (read_key_column(self.table, "split", layout.entities[0]),
                           read_columns(self.table, "split", [layout.time])[:, 0]) \
                if layout.entities and layout.time is not None else False
        return self._cards or None

    def amounts(self, params: Any) -> Any:
        """The transactions' amounts when a missed fraud costs its amount, else None."""
        if params.evaluate.cost_fn != "amount":
            return None
        import numpy as np

        # The amount is the last numeric input (params.py checks there is one).
        return np.asarray(self.raw(params)[:, self._amount], dtype=np.float64)


def _card_precision(splits: dict[str, _Split], evaluation: Any, params: Any
                    ) -> dict[str, Any]:
    """Card Precision@k on validation and test (interval on test), for a table that declares
    a card (its first entity) and a time; nothing for the Credit Card Fraud table."""
    from fraud.evaluation.card_precision import card_precision

    result: dict[str, Any] = {}
    for prefix, split, scored in (("", "test", evaluation.test), ("val_", "val", evaluation.val)):
        cards_and_times = splits[split].cards_and_times(params)
        if cards_and_times is None:
            return {}
        cards, times = cards_and_times
        result.update(card_precision(times, cards, scored.labels, scored.scores,
                                     params.evaluate.card_precision_k,
                                     params.evaluate.bootstrap if not prefix else 0,
                                     params.seed, prefix))
    return result


def _evaluate(name: str, path: Path, splits: dict[str, _Split], data_summary: Any,
              params: Any) -> Any:
    from fraud.evaluation import choice, model_evaluation
    from fraud.kinds.registry import kind

    model = kind(name)
    scorer = choice.load_logit_scorer(path, model.train_stage, params.evaluate.batch_size)
    # A detector does not record its class weights: the params it was trained with do.
    balanced = scorer.balanced if scorer.balanced is not None else (
        model.section is not None and model.balanced(getattr(params, model.section)))
    beta = model_evaluation.prior_beta(name, data_summary, balanced)
    logits = {split: model_evaluation.Logits(
                  data.labels,
                  scorer.logit(data.raw(params) if scorer.raw_input else data.features),
                  data.amounts(params))
              for split, data in splits.items()}
    evaluation = model_evaluation.evaluate_calibrated(logits["val"], logits["test"], params,
                                                      beta)
    _log(name, evaluation.metrics)
    return evaluation


def _write(out: Any, paths: dict[str, Path], name: str, evaluation: Any, params: Any) -> None:
    from fraud.core.files import write_json
    from fraud.evaluation import calibration, figures, metrics

    settings = params.evaluate
    result, test = evaluation.metrics, evaluation.test
    write_json(out.path(paths["metrics"]), result)
    write_json(out.path(paths["calibrator"]), {**evaluation.calibrator.to_dict(), "model": name})
    calibration.reliability(test.labels, test.scores, params.calibrate.bins, "width"
                            ).to_csv(out.path(paths["reliability"]), index=False)
    metrics.roc_points(test.labels, test.scores, settings.curve_points).to_csv(
        out.path(paths["roc"]), index=False)
    metrics.pr_points(test.labels, test.scores, settings.curve_points).to_csv(
        out.path(paths["prc"]), index=False)
    metrics.threshold_curve(evaluation.val_table, settings.cost_fp, settings.cost_fn,
                            settings.curve_points).to_csv(out.path(paths["thresholds"]),
                                                          index=False)
    figures.confusion_matrix_png(out.path(paths["confusion-png"]), result, name,
                                 result["threshold"])


def _log(name: str, result: dict[str, Any]) -> None:
    log.info("%s: calibration %s; test log loss %.5f (raw %.5f), ECE %.5f (raw %.5f), "
             "expected frauds %.1f (raw %.1f) of %d", name, result["calibration"],
             result["loss"], result["loss_raw"], result["ece"], result["ece_raw"],
             result["expected_frauds"], result["expected_frauds_raw"], result["frauds"])
    log.info("%s: threshold %.4g (val recall %.3f); test precision %.3f recall %.3f "
             "prc %.4f [%.4f, %.4f] auc %.4f (tp %d fp %d fn %d)", name,
             result["threshold"], result["val_recall"], result["precision"], result["recall"],
             result["prc"], result["prc_low"], result["prc_high"], result["auc"], result["tp"],
             result["fp"], result["fn"])


if __name__ == "__main__":
    run(main)
