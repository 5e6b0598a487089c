"""Expected failures of the stage scripts: exit 1, one `error:` line, no traceback, no outputs."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from fraud.core.params import SplitParams
from fraud.data.prepare import clean, split, write_table
from fraud.data.synthetic import generate_creditcard
from fraud.errors import PipelineError
from tests.credit_card import LABEL


@pytest.fixture(scope="module")
def few_frauds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """A cleaned table of 300 rows with 3 frauds, as the clean stage writes it."""
    table = clean(generate_creditcard(300, 0.01, 21), 0.001)
    assert len(table) == 300 and int(table[LABEL].sum()) == 3
    path = tmp_path_factory.mktemp("cleaned") / "cleaned.parquet"
    write_table(path, table)
    return path, table


def test_split_stage_without_fraud_in_a_split(few_frauds: tuple[Path, pd.DataFrame],
                                              tmp_path: Path, write_params: Any, run_stage: Any,
                                              stage_error: Any) -> None:
    cleaned_path, table = few_frauds
    for seed in range(50):  # a seed that leaves a split without fraud (most do with 3 frauds)
        try:
            split(table, SplitParams("random", True, 0.2, 0.2), seed)
        except PipelineError as error:
            expected = str(error)
            break
    else:
        pytest.fail("every seed gave each split a fraud")
    assert "split would hold no fraud rows" in expected

    out = tmp_path / "split"
    out.mkdir()
    outputs = {name: out / f"{name}.parquet" for name in ("train", "val", "test")}
    outputs["train"].write_bytes(b"stale")  # from an earlier run
    params_file = write_params({"seed": seed, "split.method": "random", "split.test_size": 0.2,
                                "split.val_size": 0.2, "split.group_duplicates": True})
    proc = run_stage("split", "--table", cleaned_path, "--train", outputs["train"],
                     "--val", outputs["val"], "--test", outputs["test"], "--summary",
                     out / "data.json", "--params", params_file)
    line = stage_error(proc, "split would hold no fraud rows", "3 frauds in all",
                       "split.method")
    assert line == f"error: {expected}"
    assert list(out.iterdir()) == []


def scale_options() -> list[str]:
    """The scale stage's path options, read from its --help (the stage grows outputs)."""
    from src.stages import scale as scale_stage

    text = io.StringIO()
    with contextlib.redirect_stdout(text), pytest.raises(SystemExit):
        scale_stage.main(["--help"])
    options = sorted(set(re.findall(r"--[a-z][a-z-]*", text.getvalue())) - {"--help", "--params"})
    assert {"--train", "--val", "--test", "--scaler"} <= set(options)
    return options


def test_scale_stage_missing_input(tmp_path: Path, write_params: Any, run_stage: Any,
                                   stage_error: Any) -> None:
    inputs, outputs = tmp_path / "split", tmp_path / "scaled"
    inputs.mkdir()
    outputs.mkdir()
    args: list[Any] = []
    for option in scale_options():
        folder = inputs if option in ("--train", "--val", "--test") else outputs
        suffix = ".parquet" if folder is inputs else ".out"
        args += [option, folder / f"{option[2:]}{suffix}"]
    (outputs / "scaler.out").write_text("{}", encoding="utf-8")  # stale output
    proc = run_stage("scale", *args, "--params", write_params())
    stage_error(proc, f"error: {inputs / 'train.parquet'}: ", "not found", "split stage")
    assert list(outputs.iterdir()) == []


def test_split_stage_params_with_unknown_key(few_frauds: tuple[Path, pd.DataFrame],
                                             tmp_path: Path, write_params: Any, run_stage: Any,
                                             stage_error: Any) -> None:
    params_file = write_params({"split.shuffle": True})
    out = tmp_path / "split"
    proc = run_stage("split", "--table", few_frauds[0], "--train", out / "train.parquet",
                     "--val", out / "val.parquet", "--test", out / "test.parquet",
                     "--summary", out / "data.json", "--params", params_file)
    stage_error(proc, "error: params.yaml: unknown key(s) 'split.shuffle'")
    assert not out.exists() or list(out.iterdir()) == []


@pytest.mark.parametrize(("content", "fragments"), [
    ({"clean.eps": "0"}, ("clean.eps = '0'", "expected a number > 0")),
    ({"bogus": 1}, ("unknown key(s) 'bogus'",)),
    ({"download.sha256": "abc"}, ("download.sha256 = 'abc'", "64 hexadecimal")),
    ("seed: [1\n", ("not valid YAML",)),
    (None, ("not found",)),
])
def test_download_stage_bad_params(tmp_path: Path, write_params: Any, run_stage: Any,
                                   stage_error: Any, content: Any,
                                   fragments: tuple[str, ...]) -> None:
    """Every stage loads params.yaml first (the download stage is the cheapest to start)."""
    if isinstance(content, dict):
        params_file = write_params(content)
    else:
        params_file = tmp_path / "params.yaml"
        if content is not None:
            params_file.write_text(content, encoding="utf-8")
    out = tmp_path / "raw" / "creditcard.csv"
    proc = run_stage("download", "--out", out, "--params", params_file)
    stage_error(proc, "error: ", *fragments)
    assert not out.exists()


def test_split_stage_warns_when_duplicates_drop_many_rows(tmp_path: Path, write_params: Any,
                                                          run_stage: Any) -> None:
    """A time split of a table whose rows repeat (every 4th row copied, 60,000 s later)
    drops the copies that land in a later split, and says so when they are over 5 %."""
    table = clean(generate_creditcard(2_000, 0.05, 5), 0.001)
    copies = table.iloc[::4].copy()
    copies["Time"] = copies["Time"] + 60_000  # later: those in a later split are dropped
    path = tmp_path / "cleaned.parquet"
    write_table(path, pd.concat([table, copies], ignore_index=True))
    out = {name: tmp_path / f"{name}.parquet" for name in ("train", "val", "test")}
    params_file = write_params({"split.method": "time", "split.group_duplicates": True})
    proc = run_stage("split", "--table", path, "--train", out["train"], "--val", out["val"],
                     "--test", out["test"], "--summary", tmp_path / "data.json",
                     "--params", params_file)
    assert proc.returncode == 0, proc.stderr
    found = re.search(r"(\d+) of 2500 rows dropped as later copies of duplicates", proc.stderr)
    assert found and int(found[1]) > 125 and "data.entities" in proc.stderr
