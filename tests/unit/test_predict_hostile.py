"""predict against what a user or a script can throw at it: output paths that are not files,
signals mid-run, odd inputs and cards, argument errors. Each ends in one `error:` line, the
documented exit status, and no file left behind. The model is a tiny ONNX detector built
here (no TensorFlow), so these run in a second."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from src.fraud.files import TEMP_PREFIX
from src.fraud.schema import INPUT_COLUMNS
from src.fraud.serving.contract import INPUT_NAME, OUTPUT_NAME
from tests.conftest import run_predict

REPO = Path(__file__).resolve().parents[2]


def tiny_detector(folder: Path) -> Path:
    """transaction (rows, 29) float64 → MatMul → Sigmoid: the detector contract."""
    weights = numpy_helper.from_array(
        np.random.default_rng(0).normal(size=(len(INPUT_COLUMNS), 1)) / 10, "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", [INPUT_NAME, "w"], ["logit"]),
         helper.make_node("Sigmoid", ["logit"], [OUTPUT_NAME])], "tiny",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.DOUBLE,
                                       ["rows", len(INPUT_COLUMNS)])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.DOUBLE, ["rows", 1])],
        initializer=[weights])
    path = folder / "fraud_detector.onnx"
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
     "the model expects the columns ['V1', 'V1'"),
    ('{"threshold": 0.5, "input_columns": ' + "[" * 500 + "]" * 500 + "}",
     "the model expects the columns [[[["),
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
