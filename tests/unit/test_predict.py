"""`python -m src.predict`: raw transaction CSVs in, probability and flagged out, in chunks.

A network's detector is built in-process with the library (a seeded, untrained network is
enough: the export's equivalence with the pipeline is tested in test_export.py; the
calibrated file and the card's decision rules in test_predict_decision.py). Most runs call
the command in-process (TensorFlow is imported once); two run it as a user would.
"""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from fraud.commands.predict import keras_probabilities
from fraud.core.files import file_sha256, write_json
from fraud.core.params import ModelParams
from fraud.data.prepare import clean, features_and_labels, fit_scaler, scaler_to_json
from fraud.data.synthetic import generate_creditcard, write_creditcard_csv
from fraud.serving import contract
from fraud.serving import detector as detectors
from fraud.training import network as keras_model
from tests.conftest import PredictRun, run_predict
from tests.credit_card import INPUT_COLUMNS, N_FEATURES, RAW_COLUMNS

REPO = Path(__file__).resolve().parents[2]
ROWS = 1000
EPS, CLIP = 0.001, 5.0
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONDONTWRITEBYTECODE": "1"}


@dataclass
class Exported:
    model: Path               # a .keras detector (uncalibrated; predict scores one only with
                              # --threshold)
    onnx: Path                # the same detector as ONNX (what the command-line tests run:
                              # no TensorFlow import, ~4 s less per process)
    card: Path                # the .onnx file's card (it records that file's sha256)
    threshold: float
    csv: Path                 # ROWS generated transactions, the real file's dialect
    lines: list[str]          # its lines (header first)
    frame: pd.DataFrame       # its content
    expected: np.ndarray      # the exported model's probabilities for its rows


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    root = tmp_path_factory.mktemp("predict")
    train = generate_creditcard(3000, 0.02, 3)
    features, _ = features_and_labels(clean(train, EPS))
    scaler = fit_scaler(features)
    write_json(root / "scaler.json", scaler_to_json(scaler, CLIP))
    keras_model.set_determinism(5)
    network = keras_model.make_model(N_FEATURES, ModelParams(hidden_units=8, dropout=0.5,
                                                                learning_rate=1e-3))
    stats = contract.read_scaler(root / "scaler.json", CLIP)
    detector = detectors.build_detector(network, stats, EPS)
    model_path = root / "detector.keras"  # a network's detector, uncalibrated
    keras_model.save_model(detector, model_path)
    onnx_path = model_path.with_suffix(".onnx")  # shares the card
    (root / "pair").mkdir()
    detectors.save_all(network, "baseline", stats, EPS, network_onnx_path=root / "network.onnx",
                       detector_path=root / "pair" / "detector.keras",
                       detector_onnx_path=onnx_path)

    frame = generate_creditcard(ROWS, 0.02, 4)
    csv_path = root / "transactions.csv"
    write_creditcard_csv(frame, csv_path)
    loaded = keras_model.keras.saving.load_model(model_path)
    expected = keras_probabilities(loaded, frame[INPUT_COLUMNS].to_numpy(np.float64)
                                   ).astype(np.float64)
    # A threshold that flags about a third of the rows, exactly representable in float32.
    threshold = float(np.float32(np.quantile(expected, 2 / 3)))
    # What predict reads of the card (test_export.py checks the whole card): the card is
    # the .onnx file's (its sha256); the .keras detector is uncalibrated: no card applies.
    write_json(model_path.with_suffix(".json"), {
        "threshold": threshold, "input_columns": INPUT_COLUMNS,
        "files": {"onnx": {"file": onnx_path.name, "sha256": file_sha256(onnx_path)}}})
    return Exported(model=model_path, onnx=onnx_path, card=model_path.with_suffix(".json"),
                    threshold=threshold,
                    csv=csv_path, lines=csv_path.read_text(encoding="ascii").splitlines(),
                    frame=frame, expected=expected)


def predict(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: object,
            stdin: bytes | None = None) -> PredictRun:
    """`python -m src.predict ARGS`, in-process."""
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    return run_predict(args, capsys)


def read_scores(text: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(text))


def check_scores(scores: pd.DataFrame, exported: Exported, threshold: float) -> None:
    """One row per input row, in order; flagged = probability >= threshold."""
    assert list(scores.columns) == ["probability", "flagged", "Class"]
    assert len(scores) == ROWS
    np.testing.assert_allclose(scores["probability"], exported.expected, rtol=0, atol=1e-6)
    # The file holds the float32 probability's shortest form: compare in float32.
    flagged = scores["probability"].to_numpy(np.float32) >= np.float32(threshold)
    np.testing.assert_array_equal(scores["flagged"].to_numpy(), flagged.astype(int))
    np.testing.assert_array_equal(scores["Class"], exported.frame["Class"])


def test_csv_to_file(exported: Exported, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                     monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "scores.csv"
    result = predict(capsys, monkeypatch, exported.model, exported.csv, "-o", out,
                     "--threshold", repr(exported.threshold))  # .keras: uncalibrated
    assert result.code == 0, result.stderr
    assert result.stdout == ""
    scores = pd.read_csv(out)
    check_scores(scores, exported, exported.threshold)
    flagged = int(scores["flagged"].sum())
    assert 0 < flagged < ROWS
    (summary,) = result.stderr.strip().splitlines()
    assert f"{ROWS:,} rows scored, {flagged:,} flagged ({100 * flagged / ROWS:.3f} %)" in summary
    assert "rows/s" in summary and str(out) in summary
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.csv"]  # no temp file left


def test_gzip_in_and_out(exported: Exported, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                         monkeypatch: pytest.MonkeyPatch) -> None:
    packed = tmp_path / "transactions.csv.gz"
    packed.write_bytes(gzip.compress(exported.csv.read_bytes()))
    out = tmp_path / "scores.csv.gz"
    result = predict(capsys, monkeypatch, exported.onnx, packed, "-o", out)
    assert result.code == 0, result.stderr
    check_scores(pd.read_csv(out), exported, exported.threshold)


def test_stdin_to_stdout_without_class_or_time(exported: Exported,
                                               capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    frame = exported.frame[INPUT_COLUMNS[::-1]]  # any column order; no Time, no Class
    data = frame.to_csv(index=False).encode()
    result = predict(capsys, monkeypatch, exported.onnx, "-", stdin=data)
    assert result.code == 0, result.stderr
    scores = read_scores(result.stdout)
    assert list(scores.columns) == ["probability", "flagged"]
    np.testing.assert_allclose(scores["probability"], exported.expected, rtol=0, atol=1e-6)
    assert "<stdin>" in result.stderr and "-> stdout" in result.stderr


def test_threshold_override(exported: Exported, capsys: pytest.CaptureFixture[str],
                            monkeypatch: pytest.MonkeyPatch) -> None:
    threshold = float(np.float32(np.quantile(exported.expected, 0.1)))
    result = predict(capsys, monkeypatch, exported.model, exported.csv, "--threshold", threshold)
    assert result.code == 0, result.stderr
    scores = read_scores(result.stdout)
    check_scores(scores, exported, threshold)
    assert scores["flagged"].sum() > 0.85 * ROWS  # not the card's threshold (a third flagged)


def test_threshold_without_card(exported: Exported, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    absent = tmp_path / "absent.json"
    result = predict(capsys, monkeypatch, exported.onnx, exported.csv, "--card", absent)
    assert "model card not found" in result.error_line
    result = predict(capsys, monkeypatch, exported.onnx, exported.csv, "--card", absent,
                     "--threshold", "0.5")
    assert result.code == 0, result.stderr


def test_chunks_give_the_same_rows_as_one_chunk(exported: Exported,
                                                capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    cut = ("--threshold", repr(exported.threshold))  # .keras: uncalibrated, no card applies
    whole = predict(capsys, monkeypatch, exported.model, exported.csv, "--chunk-size", ROWS,
                    *cut)
    chunked = predict(capsys, monkeypatch, exported.model, exported.csv, "--chunk-size", 37,
                      *cut)
    assert whole.code == chunked.code == 0, (whole.stderr, chunked.stderr)
    one, many = read_scores(whole.stdout), read_scores(chunked.stdout)
    # The same rows in the same order; the probability may differ in the last float32 bit
    # (oneDNN's kernels depend on the batch's size), far below 1e-6.
    assert len(one) == len(many) == ROWS
    np.testing.assert_allclose(many["probability"], one["probability"], rtol=0, atol=1e-6)
    np.testing.assert_array_equal(many["Class"], one["Class"])
    check_scores(many, exported, exported.threshold)


def set_cell(lines: list[str], line_no: int, column: str, value: str) -> bytes:
    lines = list(lines)
    cells = lines[line_no - 1].split(",")
    cells[RAW_COLUMNS.index(column)] = value
    lines[line_no - 1] = ",".join(cells)
    return ("\n".join(lines) + "\n").encode()


def drop_column(lines: list[str], column: str) -> bytes:
    index = RAW_COLUMNS.index(column)
    return ("\n".join(",".join(c for i, c in enumerate(line.split(",")) if i != index)
                      for line in lines) + "\n").encode()


HTML = b"<!DOCTYPE html>\n<html><head><title>404</title></head><body>Not found</body></html>\n"

# id -> (content maker, chunk size, fragments of the error line besides the file's path)
BAD_INPUTS = {
    "missing-column": (lambda lines: drop_column(lines, "V7"), 100_000,
                       ("missing column(s) 'V7'",)),
    "non-numeric-later-chunk": (lambda lines: set_cell(lines, 734, "V3", "abc"), 100,
                                ("line 734, column 'V3': 'abc' is not a number",)),
    "nan": (lambda lines: set_cell(lines, 251, "Amount", "NaN"), 100,
            ("line 251, column 'Amount'", "NaN or infinite")),
    "bad-class": (lambda lines: set_cell(lines, 999, "Class", '"2"'), 128,
                  ("line 999, column 'Class'", "Class must be 0 (normal) or 1 (fraud)")),
    "ragged-row": (lambda lines: ("\n".join(lines[:600] + [lines[600] + ",7"] + lines[601:])
                                  + "\n").encode(), 100,
                   ("line 601", "every row must have 31 fields")),
    "empty": (lambda lines: b"", 100_000, ("the file is empty",)),
    "header-only": (lambda lines: (lines[0] + "\n").encode(), 100_000, ("no data rows",)),
    "html": (lambda lines: HTML, 100_000, ("looks like an HTML page",)),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_fails_cleanly(case: str, exported: Exported, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    make, chunk_size, fragments = BAD_INPUTS[case]
    source = tmp_path / "in" / "transactions.csv"
    source.parent.mkdir()
    source.write_bytes(make(exported.lines))
    out = tmp_path / "out" / "scores.csv"
    result = predict(capsys, monkeypatch, exported.onnx, source, "-o", out,
                     "--chunk-size", chunk_size)
    line = result.error_line
    assert line.startswith(f"error: {source}: "), line
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    assert not out.parent.exists() or list(out.parent.iterdir()) == []  # nothing, no temp


def test_a_failed_run_keeps_an_earlier_output(exported: Exported, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "bad.csv"
    source.write_bytes(set_cell(exported.lines, 500, "V1", "x"))
    out = tmp_path / "scores.csv"
    out.write_text("earlier\n")
    result = predict(capsys, monkeypatch, exported.onnx, source, "-o", out, "--chunk-size", 64)
    assert "line 500" in result.error_line
    assert out.read_text() == "earlier\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "scores.csv"]


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")
def test_rejects_a_network_that_takes_scaled_features(tmp_path: Path, exported: Exported,
                                                      capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    network = keras_model.make_model(N_FEATURES, ModelParams(hidden_units=4, dropout=0.0,
                                                                learning_rate=1e-3))
    path = tmp_path / "baseline.keras"
    keras_model.save_model(network, path)
    result = predict(capsys, monkeypatch, path, exported.csv, "--threshold", "0.5")
    assert "not an exported fraud model" in result.error_line


def test_bad_options(exported: Exported, capsys: pytest.CaptureFixture[str],
                     monkeypatch: pytest.MonkeyPatch) -> None:
    result = predict(capsys, monkeypatch, exported.model, exported.csv, "--threshold", "1.5")
    assert "--threshold" in result.usage_error_line
    result = predict(capsys, monkeypatch, exported.model, exported.csv, "--chunk-size", "0")
    assert "--chunk-size" in result.usage_error_line


# --- as a user runs it: a subprocess (TensorFlow's start-up notices must not show) ---------

def run_cli(*args: object, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "src.predict", *map(str, args)], cwd=REPO,
                          env=ENV, input=stdin, capture_output=True, timeout=300)


def test_command_line_gzip_stdin_to_file(exported: Exported, tmp_path: Path) -> None:
    out = tmp_path / "scores.csv"
    done = run_cli(exported.onnx, "-", "-o", out, "--chunk-size", 300,
                   stdin=gzip.compress(exported.csv.read_bytes()))
    stderr = done.stderr.decode()
    assert done.returncode == 0, stderr
    (summary,) = stderr.strip().splitlines()
    assert summary.startswith(f"<stdin>: {ROWS:,} rows scored, ")
    check_scores(pd.read_csv(out), exported, exported.threshold)


def test_command_line_error_in_a_later_chunk(exported: Exported, tmp_path: Path) -> None:
    source = tmp_path / "transactions.csv"
    source.write_bytes(set_cell(exported.lines, 877, "V12", "1.2.3"))
    out = tmp_path / "out" / "scores.csv"
    done = run_cli(exported.onnx, source, "-o", out, "--chunk-size", 200)
    stderr = done.stderr.decode()
    assert done.returncode == 1, stderr
    assert stderr.strip().splitlines() == [
        f"error: {source}: line 877, column 'V12': '1.2.3' is not a number"], stderr
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_a_long_row_with_extra_fields_is_refused(exported: Exported, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """pandas dropped the extra fields of a row past its 64 KB look-ahead and scored it."""
    lines = list(exported.lines)
    lines[500] += ",1" * 40_000  # line 501: 80 KB, 40,031 fields
    source = tmp_path / "transactions.csv"
    source.write_bytes(("\n".join(lines) + "\n").encode())
    out = tmp_path / "out" / "scores.csv"
    result = predict(capsys, monkeypatch, exported.onnx, source, "-o", out)
    assert "line 501 is longer than 65,536 bytes" in result.error_line
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_command_line_giant_first_row_in_bounded_memory(exported: Exported, tmp_path: Path,
                                                        run_measured: Any) -> None:
    """A first data row of 50 MB (25 million extra fields) took predict past 4 GB: now an
    error, in bounded memory (the ONNX detector: no TensorFlow in the process)."""
    source = tmp_path / "transactions.csv"
    lines = exported.lines
    source.write_bytes(("\n".join([lines[0], lines[1] + ",1" * 25_000_000, *lines[2:]])
                        + "\n").encode())
    out = tmp_path / "scores.csv"
    code, stderr, seconds, rss_mb = run_measured([sys.executable, "-m", "src.predict",
                                                  exported.onnx, source, "-o", out])
    assert code == 1 and stderr.strip().splitlines() == [
        (f"error: {source}: line 2 is longer than 65,536 bytes; a row of 31 fields is far "
         "shorter (is this the transactions CSV?)")], stderr
    assert rss_mb < 1024 and seconds < 120, (rss_mb, seconds)
    print(f"predict, 50 MB first row: {seconds:.1f} s, {rss_mb:.0f} MB")
    assert not out.exists() and list(tmp_path.iterdir()) == [source]
