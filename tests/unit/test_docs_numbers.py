"""Figures of the committed run quoted in the prose of README.md and docs/ (outside the
rendered blocks, which test_docs_render.py checks): each quote is rebuilt here from
metrics/*.json and params.yaml, so a rerun that moves one fails this test and names the
sentence to reread. A quote is searched with the doc's line breaks read as spaces. And the
example error lines of docs/troubleshooting.md that a small input provokes are provoked."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def metrics(name: str) -> dict:
    return json.loads((ROOT / f"metrics/{name}.json").read_text(encoding="utf-8"))


def seed() -> int:
    return yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))["seed"]


QUOTES: list[tuple[str, Callable[[], str]]] = [
    ("README.md", lambda: f"{metrics('data')['rows']:,} card transactions, "
                          f"{metrics('data')['frauds']} frauds"),
    ("README.md", lambda: f"handle a {metrics('data')['fraud_rate'] * 100:.2f} % positive "
                          "class"),
    ("docs/results.md", lambda: f"The file holds {metrics('data')['duplicate_rows']:,} exact "
                                "duplicate rows"),
    ("docs/results.md", lambda: "with an identical input in another split): "
                                f"{metrics('data')['duplicates_across_splits']} here"),
    ("docs/results.md", lambda: "raw scores added up to "
                                f"{metrics('weighted')['expected_frauds_raw']:,.0f} expected "
                                "frauds on a test split holding "
                                f"{metrics('weighted')['frauds']}"),
    ("docs/pipeline.md", lambda: f"on the committed run (seed {seed()}) validation AP "
                                 f"{metrics('logreg')['val_prc']:.3f} against"),
    ("docs/pipeline.md", lambda: f"test PR-AUC {metrics('logreg')['prc']:.3f} against"),
]


def prose(relative: str) -> str:
    return re.sub(r"\s+", " ", (ROOT / relative).read_text(encoding="utf-8"))


@pytest.mark.parametrize(("doc", "quote"), QUOTES,
                         ids=[f"{doc}:{number}" for number, (doc, _) in enumerate(QUOTES)])
def test_a_quoted_figure_is_the_committed_runs(doc: str, quote: Callable[[], str]) -> None:
    expected = quote()
    assert expected in prose(doc), f"{doc} should say {expected!r}: reread that sentence"


# The error lines docs/troubleshooting.md shows, provoked for real: a reworded message fails.

COLUMNS = ["Time", *(f"V{i}" for i in range(1, 29)), "Amount", "Class"]
GOOD_ROW = ",".join(["0", *["0.5"] * 28, "1.0", "0"])


def _cell(lines: list[str], line: int, column: str, value: str) -> None:
    cells = lines[line - 1].split(",")
    cells[COLUMNS.index(column)] = value
    lines[line - 1] = ",".join(cells)


def _not_a_number(lines: list[str]) -> bytes:
    _cell(lines, 5, "V3", "abc")
    return "\n".join(lines).encode() + b"\n"


def _extra_field(lines: list[str]) -> bytes:
    lines[39] += ",0"
    return "\n".join(lines).encode() + b"\n"


def _out_of_range(lines: list[str]) -> bytes:
    _cell(lines, 9, "V10", "1e200")
    return "\n".join(lines).encode() + b"\n"


def _not_utf8(lines: list[str]) -> bytes:
    encoded = [line.encode() for line in lines]
    encoded[11] = encoded[11][:75] + b"\xe9" + encoded[11][76:]
    return b"\n".join(encoded) + b"\n"


def troubleshooting_examples() -> list[str]:
    text = (ROOT / "docs/troubleshooting.md").read_text(encoding="utf-8")
    block = re.search(r"```\n(error: .*?)```", text, flags=re.S)
    assert block, "docs/troubleshooting.md: no block of error examples"
    return block.group(1).splitlines()


@pytest.mark.parametrize("broken", [_not_a_number, _extra_field, _out_of_range, _not_utf8])
def test_a_raw_csv_error_shown_in_the_docs_is_the_one_printed(
        broken: Callable[[list[str]], bytes], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from fraud.data.prepare import read_raw_csv
    from fraud.errors import PipelineError

    monkeypatch.chdir(tmp_path)
    (tmp_path / "data/raw").mkdir(parents=True)
    lines = [",".join(COLUMNS), *[GOOD_ROW] * 60]
    (tmp_path / "data/raw/creditcard.csv").write_bytes(broken(lines))
    with pytest.raises(PipelineError) as error:
        read_raw_csv("data/raw/creditcard.csv")
    assert f"error: {error.value}" in troubleshooting_examples()


def test_the_params_error_shown_in_the_docs_is_the_one_printed(tmp_path: Path) -> None:
    from fraud.errors import PipelineError
    from fraud.params import load_params

    params = tmp_path / "params.yaml"
    params.write_text(re.sub(r"(?m)^(  test_size:) \S+", r"\1 1.5",
                             (ROOT / "params.yaml").read_text(encoding="utf-8")),
                      encoding="utf-8")
    with pytest.raises(PipelineError) as error:
        load_params(params)
    assert f"error: {error.value}" in troubleshooting_examples()
