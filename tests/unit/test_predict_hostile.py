"""predict against what a user or a script can throw at it: output paths that are not files,
signals mid-run, odd inputs and cards, argument errors. Each ends in one `error:` line, the
documented exit status, and no file left behind. The model is a tiny ONNX detector built
here (no TensorFlow), so these run in a second.

HOSTILE (name -> (build, fragment)) is the corpus tools/adversarial.py reruns: `build(folder)`
writes its files into an empty folder and returns predict's arguments; the one error line
must hold `fragment`, and nothing in the folder may change."""

from __future__ import annotations

import gzip
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from fraud.core.files import TEMP_PREFIX, file_sha256
from fraud.serving.contract import INPUT_NAME, OUTPUT_NAME
from tests.conftest import run_predict
from tests.credit_card import INPUT_COLUMNS

REPO = Path(__file__).resolve().parents[2]


def tiny_detector(folder: Path, name: str = "fraud_detector.onnx",
                  weights_scale: float = 0.1, bias: float = 0.0) -> Path:
    """transaction (rows, 29) float64 → MatMul → Add → Sigmoid: the detector contract.
    `weights_scale` 0 and a bias make a constant model (the logit of 0.99: every row)."""
    weights = numpy_helper.from_array(
        np.random.default_rng(0).normal(size=(len(INPUT_COLUMNS), 1)) * weights_scale, "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", [INPUT_NAME, "w"], ["z"]),
         helper.make_node("Add", ["z", "b"], ["logit"]),
         helper.make_node("Sigmoid", ["logit"], [OUTPUT_NAME])], "tiny",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.DOUBLE,
                                       ["rows", len(INPUT_COLUMNS)])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.DOUBLE, ["rows", 1])],
        initializer=[weights, numpy_helper.from_array(np.array([bias]), "b")])
    path = folder / name
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                                       ir_version=8).SerializeToString())
    onnx.checker.check_model(onnx.load(path))
    return path


def rows_csv(path: Path, rows: int = 5, header: list[str] | None = None) -> Path:
    names = header or INPUT_COLUMNS
    line = ",".join(["0.5"] * len(names))
    path.write_text(",".join(names) + "\n" + (line + "\n") * rows, encoding="utf-8")
    return path


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return tiny_detector(tmp_path)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(TEMP_PREFIX))


def one_line(result: object, status: int = 1) -> str:
    lines = result.stderr.strip().splitlines()  # type: ignore[attr-defined]
    assert result.code == status, (result.code, result.stderr)  # type: ignore[attr-defined]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr  # type: ignore
    return lines[0]


def test_the_tiny_detector_scores(model: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "scores.csv"
    result = run_predict([model, rows_csv(tmp_path / "in.csv"), "-o", out, "--threshold",
                          "0.5"], capsys)
    assert result.code == 0, result.stderr
    assert out.read_text().splitlines()[0] == "probability,flagged"


@pytest.mark.parametrize("kind", ["folder", "fifo", "symlink", "dev-null", "proc"])
def test_output_must_be_a_regular_file_path(kind: str, model: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "scores.csv"
    if kind == "folder":
        target.mkdir()
    elif kind == "fifo":
        os.mkfifo(target)
    elif kind == "symlink":
        (tmp_path / "real.csv").write_text("keep\n")
        target.symlink_to(tmp_path / "real.csv")
    elif kind == "dev-null":
        target = Path(os.devnull)
    else:
        target = Path("/proc/self/scores.csv")
    before = target.lstat() if kind != "proc" else None
    result = run_predict([model, rows_csv(tmp_path / "in.csv"), "-o", target, "--threshold",
                          "0.5"], capsys)
    line = one_line(result)
    expected = {"folder": "is a folder", "fifo": "is a FIFO", "symlink": "is a symbolic link",
                "dev-null": "is a device", "proc": "cannot be written there"}[kind]
    assert str(target) in line and expected in line, line
    if before is not None:  # untouched: the same inode, kind and size
        after = target.lstat()
        assert (after.st_ino, after.st_mode, after.st_size) == \
            (before.st_ino, before.st_mode, before.st_size)
    assert leftovers(tmp_path) == []
    if kind == "symlink":
        assert (tmp_path / "real.csv").read_text() == "keep\n"


@pytest.mark.parametrize(("args", "expected"), [
    (["--chunk-size", "99999999999"], "expected a whole number from 1 to 1,000,000"),
    (["--threshold", "2"], "expected a number in [0, 1]"),
    (["--bogus"], "unrecognized arguments: --bogus"),
])
def test_argument_errors_are_one_line_and_status_2(args: list[str], expected: str,
                                                   model: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    result = run_predict([model, rows_csv(tmp_path / "in.csv"), *args], capsys)
    assert expected in one_line(result, status=2)


def test_a_missing_model_says_model_not_found(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    result = run_predict([tmp_path / "nope.onnx", rows_csv(tmp_path / "in.csv")], capsys)
    assert "nope.onnx: model not found" in one_line(result)


def test_a_key_column_named_twice_in_the_header(model: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    csv = rows_csv(tmp_path / "in.csv", header=["id", "id", *INPUT_COLUMNS])
    result = run_predict([model, csv, "--id-column", "id", "--threshold", "0.5"], capsys)
    assert "the header names 'id' 2 times" in one_line(result)


@pytest.mark.parametrize(("card", "expected"), [
    ("[" * 100_000 + "]" * 100_000, "not a valid model card ('maximum recursion depth"),
    ('{"threshold": 0.5, "input_columns": [' + ",".join(['"V1"'] * 150_000) + "]}",
     "the card's input_columns (['V1', 'V1'"),
    ('{"threshold": 0.5, "input_columns": ' + "[" * 500 + "]" * 500 + "}",
     "the card's input_columns ([[[["),
    ("{" + " " * 2_000_000 + "}", "over 1,048,576 bytes; not a model card"),
], ids=["nested-100k", "3-mb-columns", "nested-columns", "2-mb"])
def test_hostile_cards_are_one_short_line(card: str, expected: str, model: Path,
                                          tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "fraud_detector.json").write_text(card)
    result = run_predict([model, rows_csv(tmp_path / "in.csv")], capsys)
    line = one_line(result)
    assert expected in line and len(line) < 500, line[:600]


def predict_process(*args: object, **kwargs: object) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "src.predict", *map(str, args)], cwd=REPO,
                            text=True, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, **kwargs)


def test_stdout_on_a_full_disk_is_one_line(model: Path, tmp_path: Path) -> None:
    with open("/dev/full", "w") as full:
        process = predict_process(model, rows_csv(tmp_path / "in.csv", rows=20_000),
                                  "--threshold", "0.5", stdout=full)
        _, err = process.communicate(timeout=60)
    assert process.returncode == 1
    full = "error: writing the scores failed (No space left on device)"
    assert err.strip().splitlines() == [full]


def test_process_substitution_is_read(model: Path, tmp_path: Path) -> None:
    csv = rows_csv(tmp_path / "in.csv")
    out = tmp_path / "scores.csv"
    command = (f"{sys.executable} -m src.predict {model} <(cat {csv}) -o {out} "
               "--threshold 0.5 -q")
    result = subprocess.run(["bash", "-c", command], cwd=REPO, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert len(out.read_text().splitlines()) == 6


@pytest.mark.parametrize(("signum", "status", "message"), [
    (signal.SIGTERM, 143, "error: stopped by SIGTERM"),
    (signal.SIGHUP, 129, "error: stopped by SIGHUP"),
    (signal.SIGINT, 130, "error: interrupted")])
def test_a_signal_mid_run_leaves_no_temporary(signum: int, status: int, message: str,
                                              model: Path, tmp_path: Path) -> None:
    out = tmp_path / "scores.csv"
    # A shell starts background jobs with SIGINT ignored, and Python keeps an ignored SIGINT
    # ignored: give the child the default disposition, as a terminal's foreground job has,
    # whatever started pytest.
    process = predict_process(model, "-", "-o", out, "--threshold", "0.5", "--chunk-size",
                              "100", stdin=subprocess.PIPE,
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert process.stdin is not None
    process.stdin.write(",".join(INPUT_COLUMNS) + "\n" + ("0.5," * 28 + "1\n") * 2_000)
    process.stdin.flush()  # the rest never comes: predict waits, mid-file, its output open
    deadline = time.monotonic() + 60
    while not leftovers(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert leftovers(tmp_path), "predict never opened its temporary output"
    process.send_signal(signum)
    _, err = process.communicate(timeout=60)
    assert process.returncode == status, err
    assert err.strip().splitlines() == [message]
    assert leftovers(tmp_path) == [] and not out.exists()


# --- the card against the model, the card's decision, the output against the inputs --------

CONSTANT_LOGIT = math.log(0.99 / 0.01)  # a model that says 0.99 for every row


def own_card(model: Path, **changes: Any) -> Path:
    """The card export would write beside `model` (what predict reads of it), with
    `changes` (None: the key removed)."""
    card = {"threshold": 0.5, "input_columns": INPUT_COLUMNS,
            "decision": {"rule": "threshold", "threshold": 0.5},
            "files": {"onnx": {"file": model.name, "sha256": file_sha256(model)}}, **changes}
    path = model.with_suffix(".json")
    path.write_text(json.dumps({k: v for k, v in card.items() if v is not None}))
    return path


def _scored(folder: Path, *args: object, **card: Any) -> list[str]:
    """The shipped pair and a batch, and predict's arguments: MODEL INPUT ARGS."""
    model = tiny_detector(folder)
    own_card(model, **card)
    return [str(a) for a in (model, rows_csv(folder / "in.csv"), *args)]


def _impostor(folder: Path, beside: bool) -> list[str]:
    """A constant-0.99 detector (the issue's 277-byte file) scored with the shipped card:
    passed with --card, or copied beside it (as the gbdt detector with the baseline's)."""
    card = own_card(tiny_detector(folder))
    impostor = tiny_detector(folder, "impostor.onnx", weights_scale=0.0, bias=CONSTANT_LOGIT)
    if beside:
        impostor.with_suffix(".json").write_bytes(card.read_bytes())
        return [str(impostor), str(rows_csv(folder / "in.csv"))]
    return [str(impostor), str(rows_csv(folder / "in.csv")), "--card", str(card)]


def _keras_with_card(folder: Path) -> list[str]:
    """A .keras detector (never loaded: refused before TensorFlow) beside a valid card."""
    own_card(tiny_detector(folder))
    keras = folder / "fraud_detector.keras"
    keras.write_bytes(b"PK\x03\x04 not loaded")
    return [str(keras), str(rows_csv(folder / "in.csv"))]


def _output_is_input(folder: Path, how: str) -> list[str]:
    """predict's input and -o name one file: by another spelling, a symlink, a hard link,
    gzip-compressed; or -o names the model or its card."""
    args = _scored(folder)
    model, rows = Path(args[0]), Path(args[1])
    if how == "gz":
        rows = folder / "in.csv.gz"
        rows.write_bytes(gzip.compress((folder / "in.csv").read_bytes()))
        return [str(model), str(rows), "-o", str(rows)]
    source, target = {
        "same path": (rows, rows),
        "another spelling": (rows, folder / "sub" / ".." / "." / "in.csv"),
        "symlink": (folder / "link.csv", rows),
        "hard link": (folder / "hard.csv", rows),
        "model": (rows, model), "card": (rows, model.with_suffix(".json"))}[how]
    (folder / "sub").mkdir()
    if how == "symlink":
        source.symlink_to(rows)
    elif how == "hard link":
        os.link(rows, source)
    return [str(model), str(source), "-o", str(target), *(
        ["--threshold", "0.5"] if how in ("model", "card") else [])]


Build = Callable[[Path], list[str]]
# name -> (build the case in an empty folder, returning predict's arguments; the fragment of
# the one error line). tools/adversarial.py reruns these (predict_cases).
HOSTILE: dict[str, tuple[Build, str]] = {
    "constant-0.99 model, --card the shipped card": (
        lambda f: _impostor(f, beside=False), "is the card of another model, not of"),
    "another model's card copied beside it": (
        lambda f: _impostor(f, beside=True), "is the card of another model, not of"),
    "card without a sha256 (older card)": (
        lambda f: _scored(f, files=None), "records no sha256 of its model"),
    "card with a malformed sha256": (
        lambda f: _scored(f, files={"onnx": {"sha256": "00ff"}}),
        "records no sha256 of its model"),
    ".keras detector with a card": (_keras_with_card, "is not calibrated, so no model card"),
    "decision: unknown rule": (
        lambda f: _scored(f, decision={"rule": "always", "threshold": 0.5}),
        "the card's decision rule 'always' is not one this command applies"),
    "decision: a string": (
        lambda f: _scored(f, decision="expected_cost"),
        "the card's 'decision' is 'expected_cost', not an object"),
    "decision: threshold differs from the card's": (
        lambda f: _scored(f, decision={"rule": "threshold", "threshold": 0.01}),
        "decision.threshold 0.01 differs from its threshold 0.5"),
    "decision: expected_cost with another threshold": (
        lambda f: _scored(f, threshold=0.5, decision={
            "rule": "expected_cost", "cost_fp": 5, "cost_fn": 300}),
        "threshold 0.5 disagrees with its expected_cost rule, which gives the threshold"),
    "decision: amount rule with a threshold": (
        lambda f: _scored(f, threshold=0.5, decision={
            "rule": "expected_cost", "cost_fp": 5, "cost_fn": "amount"}),
        "which gives no single threshold (cost_fn 'amount')"),
    "decision: a cost of 400 digits": (
        lambda f: _scored(f, threshold=None, decision={
            "rule": "expected_cost", "cost_fp": 10**400, "cost_fn": "amount"}),
        "needs cost_fp >= 0"),
    **{f"-o the input ({how})": (lambda f, how=how: _output_is_input(f, how),
                                 "is the same file as the input")
       for how in ("same path", "another spelling", "symlink", "hard link", "gz")},
    "-o the model": (lambda f: _output_is_input(f, "model"), "is the same file as the model"),
    "-o the card": (lambda f: _output_is_input(f, "card"), "is the same file as the card"),
}


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_cards_models_and_outputs_are_one_line(name: str, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    build, fragment = HOSTILE[name]
    args = build(tmp_path)
    before = snapshot(tmp_path)
    line = one_line(run_predict(args, capsys))
    assert fragment in line and len(line) < 400, line
    assert snapshot(tmp_path) == before  # nothing written, nothing replaced


def test_the_shipped_pair_and_each_rule_are_accepted(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """The checks refuse only what they name: the model's own card is accepted under each
    rule (the threshold, expected_cost by a number or by Amount), and --threshold scores the
    impostor (its card unused)."""
    for decision, threshold in (({"rule": "threshold", "threshold": 0.5}, 0.5),
                                (None, 0.5),
                                ({"rule": "expected_cost", "cost_fp": 5, "cost_fn": 300,
                                  "threshold": 5 / 305}, 5 / 305),
                                ({"rule": "expected_cost", "cost_fp": 5,
                                  "cost_fn": "amount"}, None)):
        args = _scored(tmp_path, "-q", decision=decision, threshold=threshold)
        result = run_predict(args, capsys)
        assert result.code == 0 and result.stderr == "", (decision, result.stderr)
    impostor = _impostor(tmp_path, beside=False)
    result = run_predict([*impostor[:2], "--threshold", "0.5", "-q"], capsys)
    assert result.code == 0 and result.stdout.splitlines()[1:] == ["0.99,1"] * 5, result.stdout


def test_the_impostor_flags_every_row_without_the_check(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    """What the card check prevents: the constant model passes the detector contract and,
    scored at the card's threshold, flags 100 % of rows."""
    impostor, rows = _impostor(tmp_path, beside=False)[:2]
    result = run_predict([impostor, rows, "--threshold", "0.5"], capsys)
    assert result.code == 0 and "5 rows scored, 5 flagged (100.000 %)" in result.stderr


def test_stdin_redirected_from_the_output_is_refused(model: Path, tmp_path: Path) -> None:
    """`predict M - -o X.csv < X.csv`: stdin is the output file (compared by inode)."""
    rows = rows_csv(tmp_path / "in.csv")
    before = rows.read_bytes()
    with open(rows, "rb") as stdin:
        process = predict_process(model, "-", "-o", rows, "--threshold", "0.5", stdin=stdin)
        _, err = process.communicate(timeout=60)
    assert process.returncode == 1
    assert err.strip().splitlines() == [
        (f"error: {rows}: is the same file as the input (stdin), which it would replace; "
         "write the output to another file")]
    assert rows.read_bytes() == before and leftovers(tmp_path) == []


def test_a_full_file_system_is_one_line(model: Path, tmp_path: Path) -> None:
    """-o on a disk that fills mid-run (a file size limit gives EFBIG, as ENOSPC would):
    one line, no temporary, no output."""
    import resource

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, 50_000))

    out = tmp_path / "scores.csv"
    process = predict_process(model, rows_csv(tmp_path / "in.csv", rows=20_000), "-o", out,
                              "--threshold", "0.5", preexec_fn=limit)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 1
    assert err.strip().splitlines() == ["error: writing the scores failed (File too large)"]
    assert not out.exists() and leftovers(tmp_path) == []
