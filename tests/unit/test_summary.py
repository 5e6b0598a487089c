"""python -m src.summary: one row per model, the chosen one marked, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fraud.commands import summary
from fraud.core.cli import run
from fraud.core.models import MODELS
from tests.conftest import REPO, stage_env


def write_metrics(folder: Path, chosen: str) -> None:
    for number, name in enumerate(MODELS):
        values = {"val_prc": 0.5 + number / 100, "threshold": 0.5, "cost": 1000.0 + number}
        for key in ("prc", "auc", "recall", "precision"):
            values |= {key: 0.6, f"{key}_low": 0.5, f"{key}_high": 0.7 + number / 1000}
        values |= {"calibration": "platt", "loss": 0.003, "loss_raw": 0.05, "brier": 0.0006,
                   "brier_raw": 0.01, "ece": 0.0002, "ece_raw": 0.03, "frauds": 100,
                   "expected_frauds": 99.04, "expected_frauds_raw": 2030.0 + number,
                   "cost_rule_expected": 8000.0, "cost_rule_min_cost": 7500.0 + number}
        (folder / f"{name}.json").write_text(json.dumps(values))
    (folder / "evaluate.json").write_text(json.dumps({"model": chosen}))


def test_one_row_per_model_and_the_chosen_one_marked(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    write_metrics(tmp_path, "weighted")
    summary.main(["--metrics-dir", str(tmp_path)])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("model") and "test PR-AUC [95 %]" in lines[0]
    body = lines[1:1 + len(MODELS)]
    assert [line.split()[0] for line in body] == list(MODELS)
    assert [line for line in body if " * " in line + " "] == [body[MODELS.index("weighted")]]
    assert "0.600 [0.500, 0.704]" in body[4] and "1,004" in body[4]  # gbdt, 5th model
    calibration = lines[lines.index("") + 1:]
    assert calibration[0].startswith("model") and "log loss (raw)" in calibration[0]
    assert [line.split()[0] for line in calibration[1:1 + len(MODELS)]] == list(MODELS)
    assert calibration[5].split()[1:] == ["platt", "0.00300", "(0.05000)", "0.000600",
                                          "(0.010000)", "0.00020", "(0.03000)", "99.0",
                                          "(2,034.0)", "/", "100", "8,000", "7,504"]
    assert max(len(line) for line in lines) <= 160


def test_a_missing_file_is_one_line_naming_the_stage(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    write_metrics(tmp_path, "baseline")
    (tmp_path / "gbdt.json").unlink()
    err = summary_error(tmp_path, capsys)
    assert "gbdt.json" in err and "evaluate_model" in err


def summary_error(folder: Path, capsys: pytest.CaptureFixture[str], *args: str,
                  status: int = 1) -> str:
    with pytest.raises(SystemExit) as info:
        run(summary.main, ["--metrics-dir", str(folder), *args])
    assert info.value.code == status
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


@pytest.mark.parametrize(("key", "value", "shown"), [
    ("prc_low", None, "'prc_low' is None"), ("cost", "12", "'cost' is '12'"),
    ("val_prc", float("nan"), "'val_prc' is nan"), ("threshold", [0.5], "'threshold' is [0.5]"),
    ("auc", True, "'auc' is True")])
def test_a_missing_key_or_a_non_number_is_one_line(tmp_path: Path, key: str, value: object,
                                                   shown: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    write_metrics(tmp_path, "baseline")
    data = json.loads((tmp_path / "logreg.json").read_text())
    data[key] = value
    if value is None:
        del data[key]
    (tmp_path / "logreg.json").write_text(json.dumps(data))
    err = summary_error(tmp_path, capsys)
    assert "logreg.json" in err and shown in err and "run the evaluate_model" in err


def test_a_bad_argument_is_one_line_and_status_2(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    err = summary_error(tmp_path, capsys, "--bogus", status=2)
    assert "unrecognized arguments: --bogus" in err


@pytest.mark.parametrize("command", [["-m", "src.summary"], ["-m", "fraud", "summary"]])
def test_a_reader_that_left_is_a_quiet_exit(tmp_path: Path, command: list[str]) -> None:
    """`fraud summary | head -3`: the pipe closed before the summary is written (the read end
    closed first, so every run hits it) is no traceback, as in predict and monitor."""
    write_metrics(tmp_path, "baseline")
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run([sys.executable, *command, "--metrics-dir", str(tmp_path)],
                              cwd=REPO, env=stage_env(), stdout=write_end, stderr=subprocess.PIPE,
                              text=True, timeout=120, check=False)
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (1, "")


def test_piped_to_head_prints_three_lines_and_no_traceback(tmp_path: Path) -> None:
    write_metrics(tmp_path, "baseline")
    done = subprocess.run(f"{sys.executable} -m src.summary --metrics-dir {tmp_path} | head -3",
                          shell=True, cwd=REPO, env=stage_env(), capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0 and done.stderr == ""
    assert len(done.stdout.splitlines()) == 3 and done.stdout.startswith("model")
