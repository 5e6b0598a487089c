"""Stage monitor: the monitoring report of `fraud monitor` for the test split, as a team would
run it on a day's transactions: the shipped model against the reference in its card.

Drift (PSI of every raw input and of the score against the training split's bins), the
label-free estimates at the card's threshold (expected frauds, flagged rows, precision,
recall from the calibrated probabilities alone) and, since the test split has labels, the
realised figures and the estimates' errors. Between `split.method=stratified` and
`split.method=time`, `dvc metrics diff` shows how far the test period drifted and how far
the estimates were off. ONNX Runtime only: no TensorFlow, no scikit-learn."""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Sequence
from pathlib import Path

from fraud.core.cli import parser, run

log = logging.getLogger("monitor")


def main(argv: Sequence[str]) -> None:
    cli = parser(__doc__)
    cli.add_argument("--model", required=True, type=Path, help="the shipped .onnx model")
    cli.add_argument("--card", required=True, type=Path,
                     help="its card (threshold and monitoring reference)")
    cli.add_argument("--test", required=True, type=Path,
                     help="the test split's table (raw columns and Class)")
    cli.add_argument("--metrics", required=True, type=Path, help="flat metrics (JSON)")
    cli.add_argument("--drift", required=True, type=Path,
                     help="PSI per input column and of the score (CSV: the Drift chart)")
    args = cli.parse_args(argv)

    from fraud.core.files import file_sha256, outputs, read_json_file, remove_outputs, write_json

    remove_outputs(args.metrics, args.drift)

    import numpy as np

    from fraud.core.params import load_params
    from fraud.data.columns import read_inputs, table_layout
    from fraud.monitoring.profile import check_reference_model, reference_from_card
    from fraud.monitoring.report import (
        DRIFT_COLUMNS,
        BatchMonitor,
        card_threshold,
        drift_rows,
        flat_metrics,
    )
    from fraud.serving.onnx_contract import DETECTOR
    from fraud.serving.onnx_scoring import load_onnx

    params = load_params(args.params)
    layout = table_layout(args.test, "split", params.data)
    card = read_json_file(args.card, "export")
    reference = reference_from_card(card, str(args.card), layout.model_inputs)
    check_reference_model(reference, file_sha256(args.model), args.model.name, str(args.card))
    threshold = card_threshold(card, str(args.card),
                               "set evaluate.threshold to a rule with one threshold")
    score = load_onnx(args.model, "export", DETECTOR)
    test = read_inputs(args.test, "split", layout, [layout.label])
    monitor = BatchMonitor(reference, threshold)
    monitor.add(test[:, :-1], score(test[:, :-1]), np.asarray(test[:, -1], dtype=np.float64))
    report = monitor.report()
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=DRIFT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(drift_rows(report))
    for path in (args.metrics, args.drift):
        path.parent.mkdir(parents=True, exist_ok=True)
    with outputs() as out:
        write_json(out.path(args.metrics), flat_metrics(report), sort_keys=False)
        out.path(args.drift).write_text(table.getvalue(), encoding="utf-8")
    metrics = flat_metrics(report)
    log.info("%d test rows: score PSI %.4f, largest column PSI %.4f (%s); %d major, %d moderate"
             " shift; frauds %.1f estimated, %s realised", report["rows"], report["score"]["psi"],
             report["psi_max"], report["psi_max_column"], metrics["columns_major"],
             metrics["columns_moderate"], metrics["frauds_estimated"],
             metrics.get("frauds_realised"))


if __name__ == "__main__":
    run(main)
