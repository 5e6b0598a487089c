"""A corpus of malformed and odd transaction files, each read by both readers of raw rows.

Every malformed file must give exit status 1, one `error:` line (naming the file, cut to a
bounded length), no traceback and no output, in the clean stage and in predict; files that
are merely unusual (a BOM, CRLF, a trailing blank line, gzip ...) must read exactly like the
plain file. Both commands run in-process here (predict with a stand-in model, so no
TensorFlow); a few run as real subprocesses at the end, and the giant-row cases measure the
subprocess's peak memory.
"""

from __future__ import annotations

import gzip
import io
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from fraud.data.prepare import read_raw_csv
from fraud.data.rawcsv import MAX_LINE_BYTES
from fraud.data.synthetic import generate_creditcard, write_creditcard_csv
from fraud.serving.csv_scoring import open_input, read_chunks
from tests.conftest import join, run_predict, set_cell
from tests.credit_card import RAW_COLUMNS

REPO = Path(__file__).resolve().parents[2]
ROWS, RATE, SEED = 60, 0.1, 8
MAX_ERROR_CHARS = 800  # a path, a message and a few echoes of at most ~80 characters

Lines = list[str]
Maker = Callable[[Lines], bytes]


def header(old: str, new: str) -> Maker:
    def make(lines: Lines) -> bytes:
        return join([lines[0].replace(f'"{old}"', new, 1), *lines[1:]])
    return make


def line(line_no: int, text: str | Callable[[str], str], insert: bool = False) -> Maker:
    """Replaces (or inserts before) file line `line_no`."""
    def make(lines: Lines) -> bytes:
        lines = list(lines)
        new = text(lines[line_no - 1]) if callable(text) else text
        lines[line_no - 1:line_no - 1 if insert else line_no] = [new]
        return join(lines)
    return make


def column(name: str, drop: bool = True) -> Maker:
    index = RAW_COLUMNS.index(name)

    def make(lines: Lines) -> bytes:
        return join([",".join(c for i, c in enumerate(row.split(",")) if i != index)
                     for row in lines])
    return make


def raw(content: bytes) -> Maker:
    return lambda lines: content


def bytes_at(offset: int, content: bytes) -> Maker:
    def make(lines: Lines) -> bytes:
        data = join(lines)
        return data[:offset] + content + data[offset:]
    return make


def gzipped(maker: Maker, damage: Callable[[bytes], bytes] = lambda b: b) -> Maker:
    return lambda lines: damage(gzip.compress(maker(lines), mtime=0))


def flip_byte(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:]


HTML = b"<!DOCTYPE html>\n<html><head><title>403</title></head><body>Forbidden</body></html>\n"
GOOD: Maker = join
BOTH = ("clean", "predict")


@dataclass(frozen=True)
class Bad:
    make: Maker
    fragments: tuple[str, ...]              # in the error line, after "error: PATH: "
    readers: tuple[str, ...] = BOTH          # which readers must reject it
    predict_fragments: tuple[str, ...] | None = None  # when predict says it differently


BAD: dict[str, Bad] = {
    # not a CSV at all
    "empty": Bad(raw(b""), ("empty",)),
    "spaces-only": Bad(raw(b"  \t \n \n"), ("empty",)),
    "newlines-only": Bad(raw(b"\n" * 300_000), ("blank lines", "header must be the first line")),
    "html": Bad(raw(HTML), ("HTML",)),
    "html-indented": Bad(raw(b"\n  <html><body>gone</body></html>"), ("HTML",)),
    "xml": Bad(raw(b"<?xml version='1.0'?><Error>AccessDenied</Error>"), ("HTML",)),
    "binary": Bad(raw(bytes(range(256)) * 40), ("NUL byte",)),
    "utf16": Bad(lambda lines: join(lines).decode().encode("utf-16"), ("UTF-16",)),
    "utf16-without-bom": Bad(lambda lines: join(lines).decode().encode("utf-16-le"),
                             ("NUL byte",)),
    "zip-not-csv": Bad(raw(b"PK\x03\x04" + b"\x00" * 64), ("a zip archive",)),
    "gzip-flipped-byte": Bad(gzipped(GOOD, flip_byte), ("gzip",)),
    "gzip-truncated": Bad(gzipped(GOOD, lambda b: b[:len(b) // 2]), ("gzip",)),
    "gzip-of-html": Bad(gzipped(raw(HTML)), ("HTML",)),
    "gzip-of-nothing": Bad(gzipped(raw(b"")), ("empty",)),
    # the header
    "header-only": Bad(lambda lines: join(lines[:1]), ("no data rows",)),
    "header-only-no-newline": Bad(lambda lines: lines[0].encode(), ("no data rows",)),
    "header-then-blank-lines": Bad(lambda lines: join(lines[:1]) + b"\n" * 5000,
                                   ("no data rows",)),
    "blank-line-before-header": Bad(lambda lines: b"\n" + join(lines), ("line 1 is blank",)),
    "lone-cr-line-ends": Bad(lambda lines: join(lines, "\r"), ("lone CR",)),
    "header-of-a-million-fields": Bad(lambda lines: join([",".join(["V1"] * 1_000_000),
                                                          *lines[1:]]),
                                      ("line 1 (the header) is longer than",)),
    "header-not-utf8": Bad(lambda lines: join(lines).replace(b'"V3"', b'"V\xe93"', 1),
                           ("line 1, byte", "not UTF-8", "0xe9")),
    "missing-column": Bad(column("V7"), ("missing column(s) 'V7'",)),
    "extra-column": Bad(lambda lines: join([lines[0] + ',"Extra"',
                                            *(row + ",0" for row in lines[1:])]),
                        ("unexpected column(s) 'Extra'",),
                        predict_fragments=("unexpected column(s) 'Extra'", "--id-column")),
    "renamed-column": Bad(header("V2", '"V2x"'), ("column 3 is named 'V2x', expected 'V2'",)),
    "duplicated-column": Bad(header("V3", '"V2"'), ("'V2' appear more than once",)),
    "lower-case-names": Bad(lambda lines: join([lines[0].lower(), *lines[1:]]),
                            ("missing column(s)", "unexpected column(s) 'time'",
                             "and 26 more")),
    "long-column-name": Bad(header("V4", '"' + "W" * 5000 + '"'),
                            ("column 5 is named 'WWWW", "(5,000 characters)")),
    "control-chars-in-name": Bad(header("V5", '"V5\x1b[2J\x07"'), (r"'V5\x1b[2J\x07'",)),
    "commas-only-header": Bad(lambda lines: join(["," * 30, *lines[1:]]),
                              ("column(s) '' appear more than once",)),
    "semicolons": Bad(lambda lines: join([row.replace(",", ";") for row in lines]),
                      ("separated by ';'",)),
    "tabs": Bad(lambda lines: join([row.replace(",", "\t") for row in lines]),
                ("separated by tabs",)),
    "missing-class-column": Bad(column("Class"), ("missing column(s) 'Class'",),
                                readers=("clean",)),
    "missing-time-column": Bad(column("Time"), ("missing column(s) 'Time'",),
                               readers=("clean",)),
    # the shape of the rows
    "first-row-extra-field": Bad(line(2, lambda row: row + ",7"),
                                 ("line 2 has 32 field(s), the header 31",)),
    "later-row-extra-field": Bad(line(40, lambda row: row + ",7"),
                                 ("line 40 has 32 field(s)", "every row must have 31")),
    "last-row-extra-field": Bad(line(ROWS + 1, lambda row: row + ",7,8"),
                                (f"line {ROWS + 1} has 33 field(s)",)),
    "row-missing-a-field": Bad(line(5, lambda row: row.rsplit(",", 1)[0]),
                               ("line 5 has 30 field(s)",)),
    "row-of-one-field": Bad(line(9, "12345"), ("line 9 has 1 field(s)",)),
    "row-of-a-thousand-fields": Bad(line(3, lambda row: row + ",0" * 969),
                                    ("line 3 has 1,000 field(s)",)),
    "row-longer-than-the-limit": Bad(line(2, lambda row: row + ",1" * MAX_LINE_BYTES),
                                     ("line 2 is longer than 65,536 bytes",)),
    "long-row-without-commas": Bad(line(30, lambda row: row + "9" * (MAX_LINE_BYTES + 10)),
                                   ("line 30 is longer than",)),
    "blank-line-inside": Bad(line(11, "", insert=True),
                             ("line 11 is blank", "only at the end")),
    "spaces-line-inside": Bad(line(20, "   \t", insert=True), ("line 20 is blank",)),
    "unmatched-quote": Bad(line(7, lambda row: row.replace('"', "", 1)),
                           ("line 7 has an unmatched quote",)),
    "quoted-newline": Bad(line(8, lambda row: row.replace(',"', ',"\n', 1)),
                          ("line 8 has an unmatched quote",)),
    "nul-in-a-cell": Bad(set_cell(6, "V8", "1\x002"), ("line 6 holds a NUL byte",)),
    "latin1-in-a-cell": Bad(lambda lines: set_cell(12, "V2", "Xx")(lines).replace(b"Xx", b"\xe9"),
                            ("line 12, byte", "not UTF-8", "0xe9")),
    "repeated-header-row": Bad(lambda lines: join([*lines[:29], lines[0], *lines[29:]]),
                               ("line 30, column", "is not a number"),
                               predict_fragments=("line 30, column 'V1': 'V1' is not a number",)),
    # cells
    "text-cell": Bad(set_cell(10, "V3", "abc"), ("line 10, column 'V3': 'abc' is not a number",)),
    "empty-cell": Bad(set_cell(7, "V5", ""), ("line 7, column 'V5'", "missing")),
    "nan-cell": Bad(set_cell(8, "V9", "NaN"), ("line 8, column 'V9'", "NaN")),
    "inf-cell": Bad(set_cell(4, "V1", "inf"), ("line 4, column 'V1'", "infinite")),
    "minus-inf-cell": Bad(set_cell(4, "V28", "-inf"), ("line 4, column 'V28'", "infinite")),
    "overflowing-exponent": Bad(set_cell(5, "V6", "1e5000"), ("line 5, column 'V6'", "infinite")),
    "huge-value": Bad(set_cell(9, "V10", "1e200"), ("line 9, column 'V10'", "1e+200",
                                                 "out of range")),
    "just-too-large": Bad(set_cell(9, "Amount", "2e15"), ("line 9, column 'Amount'",
                                                      "out of range")),
    "huge-negative-value": Bad(set_cell(3, "V11", "-3.5e160"), ("line 3, column 'V11'",
                                                            "out of range")),
    "huge-time": Bad(set_cell(3, "Time", "1e300"), ("line 3, column 'Time'", "out of range"),
                     readers=("clean",)),
    "text-time": Bad(set_cell(3, "Time", "noon"), ("line 3, column 'Time'", "'noon'"),
                     readers=("clean",)),
    "quoted-decimal-comma": Bad(set_cell(13, "Amount", '"1,5"'),
                                ("line 13, column 'Amount': '1,5' is not a number",)),
    "hex-number": Bad(set_cell(14, "V12", "0x1F"), ("line 14, column 'V12': '0x1F'",)),
    "boolean": Bad(set_cell(15, "V13", "True"), ("line 15, column 'V13'", "not a number")),
    "negative-amount": Bad(set_cell(6, "Amount", "-12.5"), ("line 6, column 'Amount'", "-12.5",
                                                        "negative")),
    "class-2": Bad(set_cell(12, "Class", '"2"'), ("line 12, column 'Class'",
                                              "Class must be 0 (normal) or 1 (fraud)")),
    "class-minus-1": Bad(set_cell(12, "Class", "-1"), ("line 12, column 'Class'", "-1")),
    "class-half": Bad(set_cell(16, "Class", "0.5"), ("line 16, column 'Class'", "0.5")),
    "class-text": Bad(set_cell(13, "Class", "yes"), ("line 13, column 'Class'", "'yes'")),
    "class-blank": Bad(set_cell(17, "Class", ""), ("line 17, column 'Class'", "missing"),
                       readers=("clean",)),
    "a-10-mb-cell": Bad(set_cell(18, "V14", "x" * 10_000_000),
                        ("line 18 is longer than 65,536 bytes",)),
    "a-60-kb-cell": Bad(set_cell(18, "V14", "y" * 60_000),
                        ("line 18, column 'V14': 'yyyy", "… (60,000 characters)",
                         "not a number")),
    "escape-codes-in-a-cell": Bad(set_cell(19, "V15", "\x1b[31mred\x07"),
                                  (r"'\x1b[31mred\x07' is not a number",)),
    "bidi-override-in-a-cell": Bad(set_cell(19, "V16", "1\u202e2"),
                                   (r"'1\u202e2' is not a number",)),
    "many-bad-cells": Bad(lambda lines: set_cell(30, "V4", "")(
        set_cell(5, "V4", "")(lines).decode().splitlines()),
        ("line 5, column 'V4'", "(1 more such cells)")),
    "no-fraud": Bad(lambda lines: join([lines[0], *(row.rsplit(",", 1)[0] + ',"0"'
                                                     for row in lines[1:])]),
                    ("no fraud rows",), readers=("clean",)),
}


@pytest.fixture(scope="module")
def good_lines(tmp_path_factory: pytest.TempPathFactory) -> Lines:
    path = tmp_path_factory.mktemp("good") / "creditcard.csv"
    write_creditcard_csv(generate_creditcard(ROWS, RATE, SEED), path)
    return path.read_text(encoding="ascii").splitlines()


def test_the_corpus_is_large_enough() -> None:
    assert len(BAD) >= 60
    assert sum("predict" in case.readers for case in BAD.values()) >= 55


# --- the readers, in-process ------------------------------------------------------------

def run_clean(raw_file: Path, tmp_path: Path, params: Path,
              capsys: pytest.CaptureFixture[str]) -> tuple[int, str, Path]:
    """The clean stage, in-process, with stale outputs from an earlier run in place."""
    from fraud.core.cli import run
    from src.stages import clean as clean_stage

    out = tmp_path / "out"
    out.mkdir()
    (out / "cleaned.parquet").write_bytes(b"old")
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        run(clean_stage.main, ["--raw", str(raw_file), "--out", str(out / "cleaned.parquet"),
                               "--params", str(params)])
    return int(info.value.code or 0), capsys.readouterr().err, out


@pytest.fixture
def fake_model(monkeypatch: pytest.MonkeyPatch) -> Callable[[np.ndarray], np.ndarray]:
    """predict's model, replaced by a stand-in: a probability from the features' sum."""
    from fraud.commands import predict as predict_cli

    def predict(features: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-np.clip(features.sum(axis=1) / 30, -30, 30)))

    monkeypatch.setattr(predict_cli, "load_model", lambda path: "stand-in")
    monkeypatch.setattr(predict_cli, "require_model", lambda path: None)
    monkeypatch.setattr(predict_cli, "make_predict", lambda model: predict)
    return predict


def check_error(code: int, err: str, source: Path, fragments: tuple[str, ...]) -> str:
    assert code == 1, (code, err[:2000])
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err[:2000]
    assert lines[0].startswith(f"error: {source}: "), lines[0][:2000]
    assert len(lines[0]) < MAX_ERROR_CHARS + len(str(source)), lines[0][:2000]
    assert "np.float64" not in lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def params_file(tmp_path_factory: pytest.TempPathFactory, repo_params_raw: dict) -> Path:
    import yaml

    raw = {**repo_params_raw, "download": {**repo_params_raw["download"], "sha256": None}}
    path = tmp_path_factory.mktemp("params") / "params.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


@pytest.mark.parametrize("case", [c for c, bad in BAD.items() if "clean" in bad.readers])
def test_clean_rejects(case: str, good_lines: Lines, tmp_path: Path, params_file: Path,
                       capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "creditcard.csv"
    source.write_bytes(BAD[case].make(good_lines))
    code, err, out = run_clean(source, tmp_path, params_file, capsys)
    check_error(code, err, source, BAD[case].fragments)
    assert list(out.iterdir()) == []  # the stale outputs are gone, and no temporaries


@pytest.mark.parametrize("case", [c for c, bad in BAD.items() if "predict" in bad.readers])
def test_predict_rejects(case: str, good_lines: Lines, tmp_path: Path, fake_model: Any,
                         capsys: pytest.CaptureFixture[str]) -> None:
    bad = BAD[case]
    source = tmp_path / "transactions.csv"
    source.write_bytes(bad.make(good_lines))
    out = tmp_path / "out" / "scores.csv"
    code, _, err = run_predict([tmp_path / "model.keras", source, "-o", out,
                                     "--threshold", "0.5"], capsys)
    check_error(code, err, source, bad.predict_fragments or bad.fragments)
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


# --- accepted: unusual but right ------------------------------------------------------------

def reorder(lines: Lines) -> bytes:
    order = [RAW_COLUMNS.index(c) for c in reversed(RAW_COLUMNS)]
    return join([",".join(row.split(",")[i] for i in order) for row in lines])


ACCEPTED: dict[str, Maker] = {
    "plain": GOOD,
    "trailing-blank-line": lambda lines: join(lines) + b"\n",
    "trailing-blank-lines-with-spaces": lambda lines: join(lines) + b"\n  \n\t\r\n\n",
    "no-final-newline": lambda lines: join(lines)[:-1],
    "crlf": lambda lines: join(lines, "\r\n"),
    "crlf-and-trailing-blank-line": lambda lines: join(lines, "\r\n") + b"\r\n",
    "bom": lambda lines: b"\xef\xbb\xbf" + join(lines),
    "unquoted-header": lambda lines: join([lines[0].replace('"', ""), *lines[1:]]),
    "spaces-around-names": lambda lines: join([lines[0].replace('"', "").replace(",", " , "),
                                               *lines[1:]]),
    "every-cell-quoted": lambda lines: join([lines[0], *(",".join(
        f'"{c.strip(chr(34))}"' for c in row.split(",")) for row in lines[1:])]),
    "reordered-columns": reorder,
    "gzip": gzipped(GOOD),
    "multi-member-gzip": lambda lines: (gzip.compress(join(lines[:30]), mtime=0)
                                        + gzip.compress(join(lines[30:]), mtime=0)),
    "exponents-and-signs": set_cell(2, "V1", "+0.5E-0"),  # V1 of the first row becomes 0.5
}


@pytest.fixture(scope="module")
def reference(good_lines: Lines, tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    path = tmp_path_factory.mktemp("reference") / "creditcard.csv"
    path.write_bytes(join(good_lines))
    return read_raw_csv(path)


@pytest.mark.parametrize("case", ACCEPTED)
def test_clean_accepts(case: str, good_lines: Lines, reference: pd.DataFrame,
                       tmp_path: Path) -> None:
    path = tmp_path / "creditcard.csv"
    path.write_bytes(ACCEPTED[case](good_lines))
    frame = read_raw_csv(path)
    expected = reference.copy()
    if case == "exponents-and-signs":
        expected.loc[0, "V1"] = 0.5
    pd.testing.assert_frame_equal(frame, expected)


def score_library(source: Path | str, stdin: bytes | None = None,
                  id_columns: tuple[str, ...] = ()) -> pd.DataFrame:
    """predict's reading and writing (scoring.py), with the stand-in's probabilities."""
    from fraud.serving.csv_scoring import score

    opened = open_input(source, io.BytesIO(stdin) if stdin is not None else None,
                        id_columns=id_columns)
    text = io.StringIO()
    try:
        score(opened, text, lambda x: np.full(len(x), 0.25), 0.5, chunk_size=17)
    finally:
        opened.close()
    return pd.read_csv(io.StringIO(text.getvalue()), dtype=dict.fromkeys(id_columns, str),
                       keep_default_na=False)


@pytest.mark.parametrize("case", ACCEPTED)
def test_predict_accepts(case: str, good_lines: Lines, tmp_path: Path) -> None:
    path = tmp_path / "transactions.csv"
    path.write_bytes(ACCEPTED[case](good_lines))
    scores = score_library(path)
    assert list(scores.columns) == ["probability", "flagged", "Class"]
    assert len(scores) == ROWS
    assert scores["Class"].tolist() == [int(row.rsplit(",", 1)[1].strip('"'))
                                        for row in good_lines[1:]]


def test_predict_reads_every_chunk_with_the_same_line_numbers(good_lines: Lines,
                                                              tmp_path: Path) -> None:
    """A bad row in the fourth chunk of 17 is named by its file line."""
    path = tmp_path / "transactions.csv"
    path.write_bytes(line(57, lambda row: row + ",1")(good_lines))
    opened = open_input(path)
    try:
        with pytest.raises(Exception, match="line 57 has 32 field"):
            for _ in read_chunks(opened, chunk_size=17):
                pass
    finally:
        opened.close()


# --- predict: keys and unlabelled rows (issue 11, item 5) ---------------------------------

def with_keys(lines: Lines) -> bytes:
    keys = [f'"T-{i:04d}, shop ""{i % 3}"""' for i in range(len(lines) - 1)]
    return join([f'"txn_id",{lines[0]},"branch"',
                 *(f"{k},{row},{'NA' if i % 2 else 'ß'}" for i, (k, row) in
                   enumerate(zip(keys, lines[1:], strict=True)))])


def test_id_columns_are_copied_first_in_order(good_lines: Lines, tmp_path: Path) -> None:
    path = tmp_path / "transactions.csv"
    path.write_bytes(with_keys(good_lines))
    scores = score_library(path, id_columns=("branch", "txn_id"))
    assert list(scores.columns) == ["branch", "txn_id", "probability", "flagged", "Class"]
    assert scores["txn_id"].tolist() == [f'T-{i:04d}, shop "{i % 3}"' for i in range(ROWS)]
    assert scores["branch"].tolist() == ["NA" if i % 2 else "ß" for i in range(ROWS)]


@pytest.mark.parametrize(("ids", "fragments"), [
    ((), ("unexpected column(s) 'txn_id', 'branch'", "--id-column NAME")),
    (("txn_id",), ("unexpected column(s) 'branch'", "--id-column")),
    (("shop",), ("no column 'shop' (from --id-column)",)),
    (("V1",), ("--id-column 'V1'", "the model reads it")),
    (("Class",), ("--id-column 'Class'",)),
    (("txn_id", "txn_id"), ("--id-column 'txn_id' is given twice",)),
])
def test_id_column_mistakes(ids: tuple[str, ...], fragments: tuple[str, ...],
                            good_lines: Lines, tmp_path: Path, fake_model: Any,
                            capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "transactions.csv"
    path.write_bytes(with_keys(good_lines))
    out = tmp_path / "out" / "scores.csv"
    args: list[Any] = [tmp_path / "m.keras", path, "-o", out, "--threshold", "0.5"]
    for name in ids:
        args += ["--id-column", name]
    code, _, err = run_predict(args, capsys)
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    assert not out.parent.exists()


def test_blank_class_is_an_unlabelled_row(good_lines: Lines, tmp_path: Path, fake_model: Any,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    lines = list(good_lines)
    for number in (2, 20, ROWS + 1):
        lines[number - 1] = lines[number - 1].rsplit(",", 1)[0] + ","
    path = tmp_path / "transactions.csv"
    path.write_bytes(join(lines))
    out = tmp_path / "scores.csv"
    code, _, err = run_predict([tmp_path / "m.keras", path, "-o", out, "--threshold", "0.5",
                                "--chunk-size", "19"], capsys)
    assert code == 0, err
    scores = out.read_text(encoding="utf-8").splitlines()
    assert scores[0] == "probability,flagged,Class"
    classes = [row.rsplit(",", 1)[1] for row in scores[1:]]
    expected = [row.rsplit(",", 1)[1].strip('"') for row in lines[1:]]
    assert classes == expected and classes.count("") == 3


def test_keys_from_stdin_gzip(good_lines: Lines) -> None:
    scores = score_library("-", stdin=gzip.compress(with_keys(good_lines)),
                           id_columns=("txn_id", "branch"))
    assert scores["txn_id"].iloc[-1] == f'T-{ROWS - 1:04d}, shop "{(ROWS - 1) % 3}"'


# --- real subprocesses: a few cases as DVC and users run them ------------------------------

SUBPROCESS_CASES = ["gzip-flipped-byte", "latin1-in-a-cell", "huge-value", "first-row-extra-field",
                    "a-60-kb-cell"]


@pytest.mark.parametrize("case", SUBPROCESS_CASES)
def test_clean_stage_subprocess(case: str, good_lines: Lines, tmp_path: Path,
                                params_file: Path, run_measured: Any) -> None:
    source = tmp_path / "creditcard.csv"
    source.write_bytes(BAD[case].make(good_lines))
    out = tmp_path / "out"
    code, err, _, _ = run_measured([sys.executable, "-m", "src.stages.clean", "--raw",
                                    str(source), "--out", str(out / "c.parquet"),
                                    "--params", str(params_file)])
    check_error(code, err, source, BAD[case].fragments)
    assert not out.exists() or list(out.iterdir()) == []


def test_clean_stage_subprocess_accepts_a_trailing_blank_line(good_lines: Lines,
                                                             tmp_path: Path,
                                                             params_file: Path,
                                                             run_measured: Any) -> None:
    source = tmp_path / "creditcard.csv"
    source.write_bytes(join(good_lines) + b"\n")
    out = tmp_path / "out"
    code, err, _, _ = run_measured([sys.executable, "-m", "src.stages.clean", "--raw",
                                    str(source), "--out", str(out / "c.parquet"),
                                    "--params", str(params_file)])
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["c.parquet"]


GIANT = {
    # a first data row of 50 MB: 25 million extra fields
    "50-mb-first-row": lambda lines: join([lines[0], lines[1] + ",1" * 25_000_000,
                                           *lines[2:]]),
    # a header of a million fields
    "million-field-header": lambda lines: join([",".join(['"V1"'] * 1_000_000), *lines[1:]]),
    # 50 MB of newlines after the header, then a row
    "50-mb-of-newlines": lambda lines: join(lines[:20]) + b"\n" * 50_000_000 + join(lines[20:]),
}


@pytest.fixture(scope="module")
def giant_files(good_lines: Lines, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("giant")
    paths = {}
    for name, make in GIANT.items():
        paths[name] = folder / f"{name}.csv"
        paths[name].write_bytes(make(good_lines))
    return paths


@pytest.mark.parametrize("case", GIANT)
def test_giant_inputs_fail_fast_in_bounded_memory(case: str, giant_files: dict[str, Path],
                                                  tmp_path: Path, params_file: Path,
                                                  run_measured: Any) -> None:
    """clean, and predict's reader (no TensorFlow: test_predict.py measures the command),
    each as its own process: an error in seconds, far under 1 GB."""
    source = giant_files[case]
    clean_args = [sys.executable, "-m", "src.stages.clean", "--raw", str(source), "--out",
                  str(tmp_path / "c.parquet"), "--params", str(params_file)]
    reader = ("import sys; from fraud.serving.csv_scoring import open_input, score; "
              "from fraud.errors import PipelineError\n"
              "try:\n"
              "    score(open_input(sys.argv[1]), sys.stdout, lambda x: x[:, 0], 0.5)\n"
              "except PipelineError as e:\n"
              "    print('error:', e, file=sys.stderr); sys.exit(1)\n")
    for args in (clean_args, [sys.executable, "-c", reader, str(source)]):
        code, err, seconds, rss_mb = run_measured(args)
        assert code == 1 and err.strip().splitlines()[-1].startswith(f"error: {source}: "), err
        assert seconds < 20, (args[2], seconds)
        assert rss_mb < 400, (args[2], rss_mb)
        print(f"{case} {args[2][:20]}: {seconds:.2f} s, {rss_mb:.0f} MB")
