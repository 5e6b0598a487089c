"""Stage importance: which raw columns move each model's scores, for all five models.

Per model, the mean |contribution| to its logit of each raw input column over
the test split's frauds and over a uniform sample of its rows (drawn with `seed`; gbdt's
exact Shapley values are the slow part), from its ONNX detector alone (explain.py: no
TensorFlow, no scikit-learn). One process for the five: the test split is read once.
Writes a table per model (the Importance chart; export puts the shipped model's top
columns in its card) and the top columns over the frauds as metrics."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from fraud.core.cli import model_pattern, parser, run

log = logging.getLogger("importance")


def main(argv: Sequence[str]) -> None:
    cli = parser(__doc__)
    cli.add_argument("--models", required=True, type=lambda text: tuple(text.split(",")),
                     help="the models to explain, comma-separated")
    cli.add_argument("--onnx", required=True, type=model_pattern,
                     help="the detectors, e.g. models/detector/{model}.onnx")
    cli.add_argument("--test", required=True, type=Path,
                     help="the test split's table (raw columns and label)")
    cli.add_argument("--table", required=True, type=model_pattern,
                     help="each model's importance table, e.g. plots/importance/{model}.csv")
    cli.add_argument("--metrics", required=True, type=Path,
                     help="the top columns per model (flat JSON per model)")
    args = cli.parse_args(argv)

    from fraud.core.files import outputs, remove_outputs, write_json
    from fraud.core.models import TRAIN_STAGES, require_models

    require_models(args.models, "--models")
    tables = {name: Path(args.table.format(model=name)) for name in args.models}
    remove_outputs(args.metrics, *tables.values())

    import numpy as np

    from fraud.core.params import load_params
    from fraud.data.columns import read_inputs, table_layout
    from fraud.evaluation import importance

    params = load_params(args.params)
    layout = table_layout(args.test, "split", params.data)
    test = read_inputs(args.test, "split", layout, [layout.label])
    raw, labels = test[:, :-1], np.asarray(test[:, -1], dtype=np.float64)
    rows, is_fraud, in_sample = importance.explained_rows(labels, importance.SAMPLE_ROWS,
                                                          params.seed)
    results = {}
    for name in args.models:
        explainer = importance.load_detector_explainer(
            Path(args.onnx.format(model=name)), TRAIN_STAGES[name])
        results[name] = importance.table_rows(
            importance.model_importance(explainer, raw[rows], is_fraud, in_sample,
                                        layout.model_inputs), layout.model_inputs)
    for path in (*tables.values(), args.metrics):
        path.parent.mkdir(parents=True, exist_ok=True)
    with outputs() as out:
        for name, rows_of_model in results.items():
            out.path(tables[name]).write_text(importance.table_csv(rows_of_model), encoding="utf-8")
        write_json(out.path(args.metrics),
                   importance.metrics(results, int(is_fraud.sum()), int(in_sample.sum())),
                   sort_keys=False)
    for name, rows_of_model in results.items():
        leaders = importance.top(rows_of_model, "frauds", importance.METRIC_FEATURES)
        log.info("%s: %s over %d test frauds", name,
                 ", ".join(f"{item['feature']} {item['share']:.0%}" for item in leaders),
                 int(is_fraud.sum()))


if __name__ == "__main__":
    run(main)
