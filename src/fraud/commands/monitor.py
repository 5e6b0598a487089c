"""Is the shipped model still right? Drift and label-free performance for a batch.

    fraud monitor models/fraud_detector.onnx day.csv --json day-monitor.json

BATCH is a transactions CSV as `predict` reads it (the model's input columns; optionally
the time, the label and key columns named with --id-column or declared as ids, ignored here;
plain or gzip; - for stdin), read --chunk-size rows at a time, so memory stays flat. For a
model with history features, BATCH is raw transactions and --history the earlier ones with
their labels: their features are computed as `fraud predict --history` computes them. Each
chunk is scored with the ONNX detector, and only counts are kept:

- drift: the population stability index (PSI) of every input column and of the score
  against the reference of the training data (10 quantile bins from the training split),
  with its band: < 0.1 stable, 0.1–0.25 moderate shift, ≥ 0.25 major shift;
- label-free estimates at the card's threshold (or --threshold), from the calibrated
  probabilities alone: expected frauds, flagged rows, expected precision and recall, with
  95 % intervals; and, when the batch has the label, the realised figures beside them.

The reference is the one the export stage stored in the model card (MODEL with a .json suffix
unless --card names it), built from the training split and the model's scores on it; it
names the model's sha256, so a card of another model fails. --reference REF.json reads it
from a file of its own instead (the same JSON). A one-screen
summary goes to stdout, the full report to --json and its numbers as flat JSON to --metrics
(for `dvc metrics diff`; both written atomically, never over the batch, the model, the card,
the reference or each other). Errors print one line, `error: ...`, and exit 1 (a full disk,
`> /dev/full`, included); a bad command line exits 2.

Strict, as predict is: a card it uses (for the threshold or the reference) must record the
model file's sha256, and a reference that would hide drift (a column with one bin), inflate
it (a bin without training rows) or is out of range (10^30 bins, 10^40 rows) is refused.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fraud.core.cli import OneLineParser, chunk_rows, probability, run
from fraud.core.declaration import Layout
from fraud.core.files import file_sha256, outputs, write_json
from fraud.errors import PipelineError
from fraud.monitoring.profile import (
    Reference,
    check_reference_model,
    read_reference,
    reference_from_card,
)
from fraud.monitoring.report import BatchMonitor, card_threshold, flat_metrics, summary
from fraud.serving.card import (
    check_card_model,
    read_card,
    require_model,
    scoring_layout,
)
from fraud.serving.csv_scoring import (
    DEFAULT_CHUNK_ROWS,
    OpenedInput,
    check_not_an_input,
    open_input,
    read_chunks,
)
from fraud.serving.history_input import with_history


def build_parser() -> argparse.ArgumentParser:
    cli = OneLineParser(prog="fraud monitor", description=__doc__,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("model", type=Path, help="the exported ONNX detector "
                                              "(models/fraud_detector.onnx)")
    cli.add_argument("batch", help="transactions CSV (.csv or .csv.gz); - for stdin")
    cli.add_argument("--reference", type=Path,
                     help="the training data's reference as a file of its own (default: the "
                          "one in the model card)")
    cli.add_argument("--json", type=Path, help="write the full report here (JSON)")
    cli.add_argument("--metrics", type=Path,
                     help="write the report's numbers here as flat JSON (dvc metrics)")
    cli.add_argument("--card", type=Path,
                     help="the model card, with the threshold and the reference (default: "
                          "MODEL with a .json suffix)")
    cli.add_argument("--threshold", type=probability,
                     help="estimate at this threshold instead of the card's")
    cli.add_argument("--id-column", action="append", default=[], metavar="NAME",
                     help="a key column of the batch (e.g. a transaction ID), ignored; "
                          "repeat for several")
    cli.add_argument("--chunk-size", type=chunk_rows, default=DEFAULT_CHUNK_ROWS,
                     help=f"rows read and scored at a time (default {DEFAULT_CHUNK_ROWS:,})")
    cli.add_argument("--history", type=Path, metavar="CSV",
                     help="for a model with history features (its card's data.history): "
                          "earlier transactions with their labels, covering the longest "
                          "window plus the delay before the batch's first row; the batch "
                          "is then raw transactions, as predict --history reads them")
    cli.add_argument("-q", "--quiet", action="store_true",
                     help="no summary on stdout (the --json report only)")
    return cli


def require_onnx(path: Path) -> None:
    """The ONNX detector only (no TensorFlow, ~5 s and ~850 MB): it scores what the Keras
    one scores, and the reference's score bins are its scores."""
    require_model(path)
    if path.suffix != ".onnx":
        raise PipelineError(f"{path}: monitor scores with the ONNX detector; pass the .onnx "
                            "file exported beside it (models/fraud_detector.onnx)")


def load_detector(path: Path) -> Any:
    """The ONNX detector (an OnnxModel: callable on raw rows, with its file's metadata)."""
    from fraud.serving.onnx_contract import DETECTOR
    from fraud.serving.onnx_scoring import load_onnx

    return load_onnx(path, "export", DETECTOR)


def monitor_batch(opened: OpenedInput, predict: Callable[[np.ndarray], np.ndarray],
                  reference: Reference, threshold: float,
                  chunk_size: int = DEFAULT_CHUNK_ROWS) -> BatchMonitor:
    """Reads, scores and counts the batch chunk by chunk (csv_scoring's reader and checks)."""
    monitor = BatchMonitor(reference, threshold)
    for chunk in read_chunks(opened, chunk_size):
        scores = np.asarray(predict(chunk.features), dtype=np.float64).reshape(-1)
        monitor.add(chunk.features, scores, chunk.labels)
    return monitor


def check_outputs(args: argparse.Namespace, card_path: Path) -> None:
    """--json and --metrics are renamed into place at the end: neither may be a file this
    command reads, nor the other one (the second would replace the first)."""
    inputs: dict[str, str | Path | None] = {
        "batch": args.batch, "model": args.model, "reference": args.reference,
        "card": card_path if card_path.is_file() else None}
    for output in (args.json, args.metrics):
        if output is not None:
            check_not_an_input(output, inputs)
    if args.json is not None and args.metrics is not None:
        check_not_an_input(args.metrics, {"--json output": args.json})


def load_reference(args: argparse.Namespace, card_path: Path, detector: Any
                   ) -> tuple[Reference, float, Layout, dict[str, Any]]:
    """The reference, the threshold (from the card unless given), the batch's columns and
    the card ({} without one); checked against the model file (a card it uses must be this
    model's)."""
    card = read_card(card_path, required=args.threshold is None)
    if card is not None and (args.threshold is None or args.reference is None):
        check_card_model(card, card_path, args.model)
    layout = scoring_layout(args.model, detector, card, card_path)
    inputs = layout.model_inputs
    if args.reference is not None:
        reference, label = read_reference(args.reference, inputs), str(args.reference)
    elif card is None:
        raise PipelineError(f"{card_path}: model card not found; it holds the monitoring "
                            "reference: pass --card CARD.json or --reference REF.json")
    else:
        reference, label = reference_from_card(card, str(card_path), inputs), str(card_path)
    check_reference_model(reference, file_sha256(args.model), args.model.name, label)
    threshold = args.threshold if args.threshold is not None else \
        card_threshold(card, str(card_path), "pass --threshold")
    return reference, threshold, layout, card or {}


def write_reports(args: argparse.Namespace, report: dict[str, Any]) -> None:
    """--json and --metrics, both or neither; a full disk is one line naming the file."""
    files = [(path, data) for path, data in ((args.json, report),
                                             (args.metrics, flat_metrics(report)))
             if path is not None]
    current: Path | None = None
    try:
        with outputs() as out:
            for current, data in files:
                write_json(out.path(current), data)
    except OSError as error:  # ENOSPC, EFBIG, EIO: while writing, or renaming into place
        raise PipelineError(f"{current}: cannot be written ({error.strerror or error})"
                            ) from None


def print_summary(text: str) -> None:
    """The summary on stdout, flushed here: the reader gone (`| head`) exits 1 quietly, a
    full disk (`> /dev/full`) is one line; stdout then goes to /dev/null, so that Python's
    own flush at exit prints nothing more."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except OSError as error:
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        if isinstance(error, BrokenPipeError):
            raise SystemExit(1) from None
        raise PipelineError(f"writing the summary failed ({error.strerror or error})") from None


def main(argv: Sequence[str]) -> None:
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    require_onnx(args.model)
    card_path = args.card or args.model.with_suffix(".json")
    check_outputs(args, card_path)
    detector = load_detector(args.model)  # ~0.1 s; its file names its input columns
    reference, threshold, layout, card = load_reference(args, card_path, detector)
    with tempfile.TemporaryDirectory(prefix="fraud-history-") as folder:
        source = with_history(args.batch, args.history, args.model, layout, card, card_path,
                              Path(folder))
        opened = open_input(source, id_columns=args.id_column, layout=layout)
        if source != args.batch:  # messages name the user's file, not the featured copy
            opened = dataclasses.replace(opened, label=str(args.batch))
        try:
            monitor = monitor_batch(opened, detector, reference, threshold, args.chunk_size)
        finally:
            opened.close()
    report = monitor.report()
    write_reports(args, report)
    if not args.quiet:
        print_summary(summary(report, opened.label))
        print(f"monitor: {report['rows']:,} rows in {time.perf_counter() - started:.2f} s",
              file=sys.stderr)


def command(argv: Sequence[str] | None = None) -> None:
    """`fraud monitor`: one line and exit 1 for an expected failure, 2 for a bad command line."""
    run(main, argv)


if __name__ == "__main__":
    command()
