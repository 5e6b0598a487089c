"""Score raw transactions with the exported fraud model.

    fraud predict models/fraud_detector.onnx transactions.csv -o scores.csv

MODEL is the exported model, models/fraud_detector.onnx: any of the pipeline's five models
with its calibration in one file, calibrated float64 probabilities out. A `.keras` detector
(a network's, from models/detector/) is scored too, but it is NOT calibrated: its
probabilities are the network's own (class weights or oversampling inflate them), and no
card's threshold or costs apply to them: without --threshold it is refused.

The card is checked against the model, strictly: its rule applies only to the file whose
sha256 it records (`files.onnx.sha256`, written by export). A model file that differs (another
model, an uncalibrated detector, a file edited since) is refused, and so is a card that
records no sha256 (an older card): pass the model's own card, or --threshold to score
without one. The card's `decision` must be an object with a known `rule` whose threshold
agrees with the card's `threshold`; anything else is refused, never read as a threshold.

INPUT is a CSV with the model's input columns (the card's input_columns, as params.yaml's
data: section declared them; any order), optionally the declared time (ignored), the label
(its fraud or normal value, or blank for an unlabelled row; copied to the output as 1 / 0
for comparison, never used to score), the declared ids (data.ids: copied to the output)
and key columns named with --id-column (e.g. a transaction ID; copied to the output). Any
other column is an error.
It may be gzip-compressed (told by its bytes, so `.csv.gz` and a gzip stream on stdin both
work); `-` reads stdin. Rows are checked as the pipeline's clean stage checks them: the same
messages, naming the line and column; every row must have the header's number of fields,
and a line longer than 64 KiB is refused.

OUTPUT (`-o`; stdout when absent or `-`; `.gz` compresses; never the input, the model or
the card, whatever the path says: it would replace them) has one row per input row, in
order: the keys (the declared ids, then the --id-column ones in the order given), `probability` (the
model's output as float32, in its shortest round-trip form), `flagged` (1 when the decision
rule holds, decided on the model's float64 value) and, if the input has it, the label (blank
where the input's is). The rule is the model card's (MODEL with a .json suffix, or --card):
probability >= its threshold, or, for the expected_cost rule, probability x cost_fn >
(1 - probability) x cost_fp, with cost_fn each row's amount when the card says `amount`.
--threshold overrides it with probability >= the number given.

--explain K adds, for each flagged row (every row with --explain-all), the K raw columns that
pushed the model's logit up most, largest first, with their signed contributions in logit
units (log-odds): columns reason_1, contribution_1, ..., reason_K, contribution_K after the
others, blank for unflagged rows. Per row the contributions of every input plus the
model's logit at the training means add up to its logit (src/fraud/serving/explain.py says
how each model is explained). It needs the .onnx model (the weights are read from the file).

The input is read --chunk-size rows at a time, so memory stays flat for files of any size.
A summary goes to stderr: rows, flagged (count and %), seconds and rows/s.

Errors print one line, `error: ...`, and exit 1. An output file is written to a temporary
file beside it and renamed at the end: a failed run leaves no (partial) output file, and an
existing file at that path stays as it was. On stdout that is not possible: rows scored
before the error have been written; the exit status tells.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import gzip
import io
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from fraud.core.cli import OneLineParser, chunk_rows, probability, whole_number
from fraud.core.cli import run as cli_run
from fraud.core.decision import Decision, decision_from_card
from fraud.core.declaration import MAX_INPUTS, Layout
from fraud.core.files import outputs
from fraud.errors import PipelineError
from fraud.serving.card import (
    check_card_model,
    read_card,
    require_model,
    scoring_layout,
)
from fraud.serving.csv_scoring import (
    DEFAULT_CHUNK_ROWS,
    PREPROCESS_NAME,
    STDIO,
    check_not_an_input,
    open_input,
    score,
)
from fraud.serving.history_input import with_history

if TYPE_CHECKING:
    import numpy as np

# Rows per model call: large batches are what make scoring fast (Keras' default of 32 is
# 26x slower); 65,536 rows of 29 float64 are 15 MB.
SCORE_BATCH = 65_536
# --explain K: at most the model's inputs (checked once the model is read).
_reason_count = whole_number(MAX_INPUTS, "the model's inputs")


def reason_columns(path: Path, k: int, every_row: bool, columns: Sequence[str]) -> Any:
    """The explainer of an ONNX detector, read from the file (no TensorFlow)."""
    if path.suffix != ".onnx":
        raise PipelineError(f"{path}: --explain reads the weights of the .onnx model; pass "
                            f"{path.with_suffix('.onnx').name} (the same model)")
    from fraud.serving.explain import ReasonColumns, load_explainer

    if k > len(columns):
        raise PipelineError(f"--explain {k}: the model has {len(columns)} input columns; "
                            f"ask for at most {len(columns)} reasons")
    return ReasonColumns(load_explainer(path), k, every_row, tuple(columns))


def build_parser() -> argparse.ArgumentParser:
    cli = OneLineParser(prog="fraud predict", description=__doc__,
                  formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("model", type=Path,
                     help="the exported model (models/fraud_detector.onnx); a .keras detector "
                          "is scored uncalibrated")
    cli.add_argument("input", help="transactions CSV (.csv or .csv.gz); - for stdin")
    cli.add_argument("-o", "--output", default=STDIO,
                     help="scores CSV (.gz to compress); - or absent for stdout")
    cli.add_argument("--card", type=Path,
                     help="the model card (default: MODEL with a .json suffix)")
    cli.add_argument("--threshold", type=probability,
                     help="flag rows with probability >= this instead of the card's rule")
    cli.add_argument("--id-column", action="append", default=[], metavar="NAME",
                     help="a key column (e.g. a transaction ID) to copy to the output as its "
                          "first columns; repeat for several, in order")
    cli.add_argument("--chunk-size", type=chunk_rows, default=DEFAULT_CHUNK_ROWS,
                     help=f"rows read and scored at a time (default {DEFAULT_CHUNK_ROWS:,})")
    cli.add_argument("--explain", type=_reason_count, default=0, metavar="K",
                     help="add the K columns that pushed each flagged row's score up most "
                          "(reason_i, contribution_i); needs the .onnx model")
    cli.add_argument("--explain-all", action="store_true",
                     help="with --explain: explain every row, not only the flagged ones")
    cli.add_argument("--history", type=Path, metavar="CSV",
                     help="for a model with history features (its card's data.history): "
                          "earlier transactions with their labels, covering the longest "
                          "window plus the delay before the first row to score")
    cli.add_argument("-q", "--quiet", action="store_true", help="no summary on stderr")
    return cli


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """TensorFlow's C++ runtime prints start-up notices on file descriptor 2 when imported;
    keep them off the user's stderr (our own errors and summary are the only lines)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _load_onnx(path: Path) -> Any:
    """ONNX Runtime, no TensorFlow: ~0.1 s and ~60 MB instead of ~5 s and ~850 MB."""
    from fraud.serving.onnx_contract import DETECTOR
    from fraud.serving.onnx_scoring import load_onnx

    return load_onnx(path, "export", DETECTOR)


def require_calibrated(path: Path) -> None:
    """A card's rule is for calibrated probabilities: a .keras detector's are not."""
    if path.suffix != ".onnx":
        raise PipelineError(f"{path}: a {path.suffix or 'non-.onnx'} detector is not "
                            "calibrated, so no model card's rule applies to its scores; pass "
                            "--threshold, or score the .onnx exported with the card")


def load_model(path: Path) -> Any:
    require_model(path)
    if path.suffix == ".onnx":
        return _load_onnx(path)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with _quiet_stderr():
        import keras
    try:
        model = keras.saving.load_model(path, safe_mode=True)
    except Exception as error:  # Keras raises many types for a file that is not a model
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise PipelineError(f"{path}: not a loadable Keras model ({reason})") from None
    shape = tuple(model.inputs[0].shape) if len(model.inputs) == 1 else None
    names = {layer.name for layer in model.layers}
    if shape is None or len(shape) != 2 or shape[0] is not None \
            or PREPROCESS_NAME not in names:
        raise PipelineError(f"{path}: not an exported fraud model (one (None, columns) "
                            f"input of raw transactions and a "
                            f"'{PREPROCESS_NAME}' layer); a trained network such as "
                            "models/baseline.keras takes scaled features: pass "
                            "models/fraud_detector.onnx")
    return model


def check_width(path: Path, model: Any, inputs: Sequence[str]) -> None:
    """A model must take as many columns as the CSV's inputs it is given."""
    width = getattr(model, "columns", None)
    if width is None and getattr(model, "inputs", None):  # a .keras detector: [numbers, text]
        width = sum(int(tensor.shape[1]) for tensor in model.inputs)
    if width is not None and width != len(inputs):
        raise PipelineError(f"{path}: takes {width} input columns, not the {len(inputs)} its "
                            "card names; pass the model's own card (--card)")


def keras_probabilities(model: Any, features: np.ndarray) -> np.ndarray:
    """A Keras detector's fraud probabilities (1-D) for raw rows, in batches of SCORE_BATCH.

    A direct call keeps float64 (model.predict would cast to float32 first), so this scores
    what the ONNX twin scores; the tests use it as the Keras reference.
    """
    import numpy as np

    def inputs(batch: np.ndarray) -> Any:
        if len(model.inputs) == 1:
            return batch
        n = int(model.inputs[0].shape[1])  # the numbers, then the categorical text
        return [np.asarray(batch[:, :n], dtype=np.float64), batch[:, n:].astype(str)]

    parts = [np.asarray(model(inputs(features[start:start + SCORE_BATCH]), training=False))
             .reshape(-1) for start in range(0, len(features), SCORE_BATCH)]
    return np.concatenate(parts)


def make_predict(model: Any) -> Callable[[np.ndarray], np.ndarray]:
    from fraud.serving.onnx_scoring import OnnxModel

    if isinstance(model, OnnxModel):  # batched, float64 in, float64 probabilities out
        return model
    return functools.partial(keras_probabilities, model)


@contextlib.contextmanager
def _text_output(path: Path) -> Iterator[TextIO]:
    if path.name.endswith(".gz"):
        with gzip.GzipFile(path, "wb", mtime=0) as raw, \
                io.TextIOWrapper(raw, encoding="utf-8", newline="\n") as text:
            yield text
    else:
        with open(path, "w", encoding="utf-8", newline="\n") as text:
            yield text


def main(argv: Sequence[str]) -> None:
    args = build_parser().parse_args(argv)
    if args.explain_all and not args.explain:
        raise PipelineError("--explain-all needs --explain K (how many reasons per row)")
    started = time.perf_counter()
    require_model(args.model)  # before its card: the model is what is missing
    card_path = args.card or args.model.with_suffix(".json")
    check_not_an_input(args.output, {"input": args.input, "model": args.model,
                                     "card": card_path if card_path.is_file() else None})
    if args.threshold is not None:
        card = read_card(card_path, required=False)  # a card beside the model is checked
        decision = Decision(threshold=args.threshold)
    else:
        require_calibrated(args.model)
        card = read_card(card_path, required=True) or {}
        check_card_model(card, card_path, args.model)
        decision = decision_from_card(card.get("decision"), card.get("threshold"),
                                      str(card_path))
    # An ONNX model is loaded first (~0.1 s): its file names its input columns. A Keras one
    # after the input's header is checked: TensorFlow takes seconds, a bad header none.
    onnx_model = load_model(args.model) if args.model.suffix == ".onnx" else None
    layout = scoring_layout(args.model, onnx_model, card, card_path)
    with tempfile.TemporaryDirectory(prefix="fraud-history-") as folder:
        source = with_history(args.input, args.history, args.model, layout, card or {},
                              card_path, Path(folder))
        opened = open_input(source, id_columns=args.id_column, layout=layout)
        if source != args.input:  # messages name the user's file, not the featured copy
            opened = dataclasses.replace(opened, label=str(args.input))
        _score(args, started, opened, onnx_model, layout, decision)


def _score(args: argparse.Namespace, started: float, opened: Any, onnx_model: Any,
           layout: Layout, decision: Decision) -> None:
    """Scores the opened input and prints the summary line."""
    try:
        model = onnx_model if onnx_model is not None else load_model(args.model)
        check_width(args.model, model, layout.model_inputs)
        predict = make_predict(model)
        explain = (reason_columns(args.model, args.explain, args.explain_all,
                                  layout.model_inputs)
                   if args.explain else None)
        if args.output == STDIO:
            summary = score(opened, sys.stdout, predict, decision, args.chunk_size, explain)
            sys.stdout.flush()
            target = "stdout"
        else:
            with outputs() as out, _text_output(out.path(args.output)) as handle:
                summary = score(opened, handle, predict, decision, args.chunk_size, explain)
            target = args.output
    finally:
        opened.close()
    if not args.quiet:
        print(summary.line(opened.label, target)
              + f" (total {time.perf_counter() - started:.2f} s with model loading)",
              file=sys.stderr)


def _main_on_stdout(argv: Sequence[str]) -> None:
    """`main`, and what writing scores to stdout can end in: the reader left (`... | head`:
    not an error of ours, exit 1 quietly) or a full disk (`> /dev/full`: one line). Either way
    stdout goes to /dev/null so that Python's own flush at exit prints nothing more."""
    try:
        main(argv)
    except OSError as error:
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        if isinstance(error, BrokenPipeError):
            raise SystemExit(1) from None
        raise PipelineError(f"writing the scores failed ({error.strerror or error})") from None


def run(argv: Sequence[str] | None = None) -> None:
    """As every stage runs: one line and exit 1 for an expected failure, 2 for a bad command
    line, 128 + N for signal N (src/fraud/core/cli.py)."""
    cli_run(_main_on_stdout, argv)


command = run  # `fraud predict`


if __name__ == "__main__":
    run()
