"""Figures of the committed run quoted in the prose of README.md and docs/ (outside the
rendered blocks, which test_docs_render.py checks): each quote is rebuilt here from
metrics/*.json and params.yaml, so a rerun that moves one fails this test and names the
sentence to reread. A quote is searched with the doc's line breaks read as spaces."""

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
