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


def handbook(name: str, model: str, key: str) -> str:
    """`0.705 [0.659, 0.751]`: a figure of a committed handbook report, with its interval."""
    figures = json.loads((ROOT / f"reports/handbook/{name}.json").read_text(
        encoding="utf-8"))["models"][model]
    return f"{figures[key]:.3f} [{figures[key + '_low']:.3f}, {figures[key + '_high']:.3f}]"


QUOTES: list[tuple[str, Callable[[], str]]] = [
    ("docs/results.md", lambda: f"AP ({handbook('week-unclipped', 'gbdt', 'prc')})"),
    ("docs/results.md", lambda: f"test AP, {handbook('all-days-unclipped', 'baseline', 'prc')}, "
                                "and CP@100, "
                                f"{handbook('all-days-unclipped', 'baseline', 'card_precision')}"),
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
    ("docs/experiments.md", lambda: "the committed run's are all under "
                                    f"{drift_bound(metrics('monitor'))}"),
]


def drift_bound(monitor: dict) -> str:
    """The power of ten the committed run's PSIs (every input's and the score's) stay under."""
    largest = max(monitor["psi_max"], monitor["psi_score"])
    bound = 10.0 ** -3
    while bound > largest * 10:  # the smallest such power, so a drop is noticed too
        bound /= 10
    while bound <= largest:
        bound *= 10
    return f"{bound:g}"


# The README's case for the default candidates, from the committed sweep report.

STRATIFIED, TIME = "split.method=stratified", "split.method=time"


def sweep_rows(section: str) -> list[list[str]]:
    """The table rows (cells) of one `## <section>` of reports/sweeps/sweep.md, every table."""
    report = (ROOT / "reports/sweeps/sweep.md").read_text(encoding="utf-8")
    part = report.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in part.splitlines() if line.startswith("| ") and "---" not in line]


def model_table(section: str) -> list[list[str]]:
    """The section's first table: one row per model, ranked on validation, then `chosen`."""
    rows = sweep_rows(section)
    assert rows[0][0] == "model", rows[0]
    end = next(i for i, row in enumerate(rows) if row[0].startswith("chosen"))
    return rows[1:end + 1]


def sweep_cell(section: str, *first: str, column: int) -> str:
    row = next((row for row in sweep_rows(section) if row[:len(first)] == list(first)), None)
    assert row is not None, f"reports/sweeps/sweep.md, {section}: no row {first}"
    return row[column]


def middle(cell: str) -> str:
    return cell.split(" [", 1)[0]


def negated(cell: str) -> str:
    """"-0.011 [-0.033, +0.012]" (a − b) as b − a, with the README's minus sign."""
    value, low, high = (float(number) for number in re.findall(r"[-+]?\d+\.\d+", cell))
    return f"{-value:+.3f} [{-high:+.3f}, {-low:+.3f}]".replace("-", "−")


def stratified_case() -> str:
    lead = negated(sweep_cell(STRATIFIED, "baseline − gbdt", "test PR-AUC", column=2))
    return (f"on stratified splits all five would have chosen {model_table(STRATIFIED)[0][0]}, "
            f"whose test PR-AUC lead over the baseline network ({lead})")


def time_case() -> str:
    table = model_table(TIME)
    best, chosen = table[0], table[-1]
    assert chosen[0].startswith("chosen"), chosen
    return (f"out of time they would have chosen {best[0]}, best on validation "
            f"({middle(best[1])}) but worst of the five on test ({middle(best[2])} against "
            f"{middle(chosen[2])} for the networks' choice)")


QUOTES += [("README.md", stratified_case), ("README.md", time_case)]


# docs/results.md's reading of the same report ("What this says").

HOLM = {"yes": "beyond the noise", "yes, uncorrected only": "not after Holm's correction",
        "no": "within the noise"}


def paired(section: str, pair: str, metric: str) -> tuple[str, str]:
    """A paired difference's mean (as the report prints it) and its Holm verdict in words."""
    row = next((row for row in sweep_rows(section) if row[:2] == [pair, metric]), None)
    assert row is not None, f"reports/sweeps/sweep.md, {section}: no pair {pair}, {metric}"
    return middle(row[2]), HOLM[row[-1]]


def flipped(value: str) -> str:
    return f"{-float(value):+.3f}".replace("-", "−")


def prc_on_test(section: str, model: str) -> str:
    return middle(next(row for row in model_table(section) if row[0] == model)[2])


def moved(model: str) -> str:
    return f"{prc_on_test(STRATIFIED, model)} → {prc_on_test(TIME, model)}"


def results_random_splits() -> str:
    val_lead, val_verdict = paired(STRATIFIED, "baseline − gbdt", "validation PR-AUC (AP)")
    logreg, logreg_verdict = paired(STRATIFIED, "baseline − logreg", "test PR-AUC")
    weighted = paired(STRATIFIED, "baseline − weighted", "test PR-AUC")[0]
    oversample = paired(STRATIFIED, "baseline − oversample", "test PR-AUC")[0]
    return (f"({flipped(val_lead)} PR-AUC over baseline, {val_verdict} after Holm's correction);"
            f" on test its lead over baseline "
            f"({negated(sweep_cell(STRATIFIED, 'baseline − gbdt', 'test PR-AUC', column=2))}) "
            f"is within the noise. The tutorial's baseline network beats plain logistic "
            f"regression by a hair ({logreg} test, {logreg_verdict}) and beats its own "
            f"class-weighted ({weighted}) and oversampled ({oversample}) variants")


def results_out_of_time() -> str:
    behind, behind_verdict = paired(TIME, "oversample − gbdt", "test PR-AUC")
    logreg, logreg_verdict = paired(TIME, "baseline − logreg", "test PR-AUC")
    trees = float(prc_on_test(STRATIFIED, "gbdt")) - float(prc_on_test(TIME, "gbdt"))
    return (f"(baseline {moved('baseline')}; oversample and weighted even do better, "
            f"{moved('oversample')} and {moved('weighted')} — their test periods differ, so "
            f"these are not paired), the trees lose {trees:.3f} ({moved('gbdt')}) and fall "
            f"behind oversample ({flipped(behind)}, {behind_verdict}), and logistic "
            f"regression, the best on validation, is the worst on test ({moved('logreg')}; "
            f"{flipped(logreg)} against baseline, {logreg_verdict})")


def results_shipped() -> str:
    return f"the shipped model's test PR-AUC, {model_table(TIME)[-1][2]}, is"


QUOTES += [("docs/results.md", results_random_splits), ("docs/results.md", results_out_of_time),
           ("docs/results.md", results_shipped)]


def test_the_readme_s_worst_on_test_is_the_worst() -> None:
    """The README: out of time, the model best on validation is the worst of five on test."""
    models = [row for row in model_table(TIME) if not row[0].startswith("chosen")]
    assert len(models) == 5, models
    assert min(models, key=lambda row: float(middle(row[2]))) == models[0]


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
    from fraud.core.params import load_params
    from fraud.errors import PipelineError

    params = tmp_path / "params.yaml"
    params.write_text(re.sub(r"(?m)^(  test_size:) \S+", r"\1 1.5",
                             (ROOT / "params.yaml").read_text(encoding="utf-8")),
                      encoding="utf-8")
    with pytest.raises(PipelineError) as error:
        load_params(params)
    assert f"error: {error.value}" in troubleshooting_examples()
