"""Figures of the committed run quoted in the prose of README.md, CONTRIBUTING.md and docs/
(outside the rendered blocks, which test_docs_render.py checks): each quote is rebuilt here
from metrics/*.json, params.yaml and the committed reports (reports/sweeps, reports/handbook),
so a rerun that moves one fails this test and names the sentence to reread; and so are the
constants of the code the docs quote (PSI bands, bounds, defaults, corpus sizes). A quote is
searched with the doc's line breaks read as spaces. And the example error lines of
docs/troubleshooting.md that a small input provokes are provoked."""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


# More figures of the committed run, and of the committed sweep and handbook reports.

def params() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))


def sweep_group(label: str) -> dict:
    report = json.loads((ROOT / "reports/sweeps/sweep.json").read_text(encoding="utf-8"))
    return next(group for group in report["groups"] if group["label"] == label)


def same_in_every_run(group: dict, key: str) -> int:
    """A count every seed and model of a sweep group shares (the time split is one split)."""
    values = {run[key] for seeds in group["per_seed"].values() for run in seeds.values()}
    assert len(values) == 1, f"{group['label']}: {key} differs between runs: {values}"
    return values.pop()


def percent(fraction: float) -> str:
    return f"{fraction * 100:.0f} %"


def time_split_shares() -> tuple[str, str, str]:
    """split.method: time's shares of the rows: train, validation, test, from params.yaml."""
    split = params()["split"]
    rest = 1 - split["test_size"]
    return (percent(rest * (1 - split["val_size"])), percent(rest * split["val_size"]),
            percent(split["test_size"]))


def model_cell(section: str, model: str, column: int) -> str:
    return next(row for row in model_table(section) if row[0] == model)[column]


def stratified_flags() -> str:
    """Mean test recall (column 4) and precision (5): weighted and oversample against baseline."""
    def three(column: int) -> str:
        weighted, oversample, baseline = (middle(model_cell(STRATIFIED, model, column))
                                          for model in ("weighted", "oversample", "baseline"))
        return f"{weighted} and {oversample} against {baseline}"
    return f"(mean recall {three(4)}) with lower precision ({three(5)})"


def shipped_every_time() -> str:
    chosen = set(sweep_group(STRATIFIED)["chosen"].values())
    assert len(chosen) == 1, f"the stratified sweep shipped {chosen}, not one model"
    return f"On random splits it ships {chosen.pop()} every time"


def peer_interval() -> str:
    cell = model_cell(TIME, "logreg", 1)
    return f"their intervals are empty (`[{cell.split(' [', 1)[1]}`)"


WORDS = {3: "three", 4: "four", 5: "five", 6: "six", 10: "ten"}


def spread(section: str, high: str, low: str) -> tuple[str, str]:
    """The smallest and largest half-width over a sweep group's models of (high - low) per
    run (an interval's), or of the range of `high` over its seeds when high == low."""
    runs = sweep_group(section)["per_seed"].values()
    if high == low:
        widths = [(max(seeds[s][high] for s in seeds) - min(seeds[s][high] for s in seeds)) / 2
                  for seeds in runs]
    else:
        widths = [(run[high] - run[low]) / 2 for seeds in runs for run in seeds.values()]
    return f"±{min(widths):.2f}", f"{max(widths):.2f}"


def target_recall_floor() -> str:
    """The smallest validation recall >= evaluate.target_recall that the val frauds allow."""
    target, frauds = params()["evaluate"]["target_recall"], metrics("data")["val_frauds"]
    caught = math.ceil(target * frauds)
    return (f"Every model reaches {caught / frauds:.3f} on validation ({caught} of {frauds} "
            f"frauds, the smallest recall ≥ {target:g} that {frauds} frauds allow)")


def handbook_report(name: str) -> dict:
    return json.loads((ROOT / f"reports/handbook/{name}.json").read_text(encoding="utf-8"))


def handbook_override(name: str, key: str) -> str:
    overrides = dict(item.split("=", 1) for item in handbook_report(name)["overrides"])
    return overrides[key]


def handbook_published() -> tuple[str, str]:
    """The handbook's own AP and CP@100 (tools/handbook_report.py), as results.md cites them."""
    from tools.handbook_report import HANDBOOK

    single = [ap for _, ap, _ in HANDBOOK["single split"].values()]
    name, (_, ap, cp) = max(HANDBOOK["prequential selection"].items(),
                            key=lambda item: item[1][1])
    return (f"single-split figures ({min(single):.3f}–{max(single):.3f})",
            f"above the handbook's best ({ap:.3f} and {cp:.3f}, {name} at its best")


def handbook_chosen(name: str) -> str:
    """How results.md names the model `auto` chose on a handbook report."""
    chosen = handbook_report(name)["chosen"]
    return {"baseline": "the tutorial's network", "gbdt": "the gradient-boosted trees"}.get(
        chosen, chosen)


QUOTES += [
    ("docs/results.md", lambda: f"`evaluate.bootstrap` ({params()['evaluate']['bootstrap']:,})"),
    ("docs/results.md", lambda: f"{params()['evaluate']['bootstrap']:,} resamples take"),
    ("docs/results.md", lambda: f"not of {round(metrics('data')['test_rows'], -3):,} rows"),
    ("docs/results.md", lambda: "the earliest {} train, the next {} validate, the last {} "
                                "test".format(*time_split_shares())),
    ("docs/results.md", lambda: "train on the first {} of the two days, validate on the next "
                                "{}, test on the last {}".format(*time_split_shares())),
    ("docs/results.md", lambda: f"{same_in_every_run(sweep_group(TIME), 'val_frauds')} "
                                "validation and "
                                f"{same_in_every_run(sweep_group(TIME), 'frauds')} test frauds"),
    ("docs/results.md", lambda: "each run's bootstrap intervals: {}–{} PR-AUC on {} test "
                                "frauds".format(*spread(TIME, "prc_high", "prc_low"),
                                                same_in_every_run(sweep_group(TIME), "frauds"))),
    ("docs/results.md", lambda: "a model's test PR-AUC moves by {}–{} between splits (half its "
                                "range over the {} seeds".format(
                                    *spread(STRATIFIED, "prc", "prc"),
                                    WORDS[len(sweep_group(STRATIFIED)["seeds"])])),
    ("docs/results.md", lambda: "ran the pipeline for seeds {}–{}".format(
        min(sweep_group(STRATIFIED)["seeds"]), max(sweep_group(STRATIFIED)["seeds"]))),
    ("docs/results.md", stratified_flags),
    ("docs/results.md", peer_interval),
    ("docs/results.md", shipped_every_time),
    ("docs/results.md", target_recall_floor),
    ("docs/results.md", lambda: f"({handbook_override('week', 'transactions.days')} days, so "
                                "that they end on the handbook's last test day)"),
    ("docs/results.md", lambda: "known-fraud rule looks back a fixed "
                                f"{handbook_override('all-days', 'split.known_fraud_days')} days"),
    ("docs/results.md", lambda: f"on a week of {handbook_report('week')['data']['test_frauds']} "
                                "test frauds"),
    ("docs/results.md", lambda: handbook_published()[0]),
    ("docs/results.md", lambda: handbook_published()[1]),
    ("docs/results.md", lambda: f"`auto` chooses {handbook_chosen('all-days-unclipped')} on "
                                "validation, and its test AP"),
]


# Constants of the code and defaults of params.yaml that the docs quote: a changed default
# fails here, and names the sentence.

def constant(module: str, name: str) -> Any:
    import importlib

    return getattr(importlib.import_module(module), name)


def psi_bands() -> str:
    from fraud.monitoring.drift import MAJOR_PSI, MODERATE_PSI

    return (f"< {MODERATE_PSI:g} stable, {MODERATE_PSI:g}–{MAJOR_PSI:g} moderate shift, "
            f"≥ {MAJOR_PSI:g} major shift")


def random_split_drift() -> str:
    """pipeline.md: on the committed (random) split no input crosses the moderate band."""
    from fraud.monitoring.drift import MODERATE_PSI

    monitor = metrics("monitor")
    assert monitor["columns_moderate"] == monitor["columns_major"] == 0, monitor
    return f"no input crosses {MODERATE_PSI:g} on a random split"


def oversample_steps() -> str:
    """An oversampled epoch: ceil(2·neg / train.batch_size) steps (src/fraud/training/fit.py)."""
    data = metrics("data")
    negatives = data["train_rows"] - data["train_frauds"]
    steps = math.ceil(2 * negatives / params()["train"]["batch_size"])
    return f"`ceil(2·neg / batch_size)` = {steps:,} steps on the real"


def importance_columns() -> str:
    """The importance table's width: per model, per raw input, two shares (frauds, sample)."""
    importance = metrics("importance")
    models = [name for name, value in importance.items() if isinstance(value, dict)]
    inputs = sum(metrics("monitor")[f"columns_{band}"] for band in ("stable", "moderate",
                                                                     "major"))
    return f"the whole table would add {len(models) * inputs * 2} columns"


def overflow_bounds() -> str:
    from fraud.core.params import OVERFLOW_BOUNDS
    from fraud.kinds.logreg import C_RANGE

    def power(value: float) -> str:
        return f"10^{math.log10(value):.0f}"

    learning_rate, eps = OVERFLOW_BOUNDS["model.learning_rate"][0], OVERFLOW_BOUNDS["clean.eps"][0]
    cost = OVERFLOW_BOUNDS["evaluate.cost_fn"][0]
    assert OVERFLOW_BOUNDS["evaluate.cost_fp"][0] == cost
    return (f"(`model.learning_rate` at most {learning_rate:g}, `clean.eps` at most {eps:,.0f}, "
            f"costs at most {power(cost)}, C in [{power(C_RANGE[0])}, {power(C_RANGE[1])}])")


def binary(size: int) -> str:
    for unit, shift in (("MiB", 20), ("KiB", 10)):
        if size >= 1 << shift and size % (1 << shift) == 0:
            return f"{size >> shift} {unit}"
    return f"{size:,} bytes"


def onnx_budgets() -> list[str]:
    from fraud.serving import onnx_contract as contract

    elements = contract.MAX_TENSOR_ELEMENTS
    assert elements % (1 << 20) == 0 and contract.MAX_ROW_WORK == 1_000_000
    return [(f"more than {elements >> 20}M stored elements in all or more than "
             f"{binary(contract.MAX_MODEL_BYTES)}"),
            f"more than {contract.MAX_NODES:,} operators",
            (f"more than {binary(contract.MAX_ROW_BYTES)} of values or a million multiply-adds "
             "per row"),
            f"more than {binary(contract.MAX_FIXED_BYTES)} computed from its weights alone"]


def dvc_version() -> str:
    """The DVC version requirements.txt pins, as major.minor."""
    pinned = re.search(r"^dvc==(\d+\.\d+)", (ROOT / "requirements.txt").read_text(
        encoding="utf-8"), flags=re.M)
    assert pinned, "requirements.txt pins no dvc version"
    return pinned.group(1)


def corpus_size(relative: str, name: str) -> int:
    """The number of cases of a test corpus (a module-level dict or list), by loading the
    test module under a name of its own (pytest may hold it under another)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"_corpus_{Path(relative).stem}",
                                                  ROOT / relative)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return len(getattr(module, name))


def max_levels() -> str:
    from fraud.core.declaration import MAX_LEVELS, MAX_LEVELS_CEILING

    return f"default {MAX_LEVELS}, at most {MAX_LEVELS_CEILING}"


def max_levels_example() -> str:
    from fraud.core.declaration import MAX_LEVELS, MAX_LEVELS_CEILING

    return (f"over data.max_levels ({MAX_LEVELS}); raise data.max_levels (at most "
            f"{MAX_LEVELS_CEILING})")


def simulated_defaults() -> str:
    section = params()["transactions"]
    return (f"the defaults are the handbook's ({section['customers']:,} customers, "
            f"{section['terminals']:,} terminals, {section['days']} days from "
            f"{section['start']})")


QUOTES += [
    ("README.md", lambda: f"Over {WORDS[len(sweep_group(STRATIFIED)['seeds'])]} seeds"),
    ("docs/pipeline.md", lambda: f"(`train.patience: {params()['train']['patience']}`)"),
    ("docs/pipeline.md", oversample_steps),
    ("docs/pipeline.md", lambda: "`HistGradientBoostingClassifier` with `l2_regularization: "
                                 f"{params()['gbdt']['l2_regularization']}`, `learning_rate: "
                                 f"{params()['gbdt']['learning_rate']}`"),
    ("docs/pipeline.md", lambda: f"Bands: {psi_bands()}"),
    ("docs/pipeline.md", lambda: "over {} equal-mass bins".format(
        constant("fraud.monitoring.profile", "BINS"))),
    ("docs/pipeline.md", random_split_drift),
    ("docs/pipeline.md", lambda: f"over {metrics('importance')['rows_sample']:,} test rows "
                                 "drawn with `seed`"),
    ("docs/pipeline.md", lambda: f"all ~{round(metrics('data')['test_rows'], -3) // 1000}k rows"),
    ("docs/pipeline.md", importance_columns),
    ("docs/serving.md", lambda: f"its band ({psi_bands()})"),
    ("docs/serving.md", lambda: "rows at a time (default {:,})".format(
        constant("fraud.serving.csv_scoring", "DEFAULT_CHUNK_ROWS"))),
    ("docs/serving.md", lambda: f"On the real file ({metrics('data')['rows']:,} rows)"),
    ("docs/serving.md", lambda: "2 to {} `bins`, 1 to 10^{:.0f} `rows`".format(
        constant("fraud.monitoring.profile", "MAX_BINS"),
        math.log10(constant("fraud.monitoring.profile", "MAX_ROWS")))),
    ("docs/experiments.md", lambda: "with the {:g} and {:g} band".format(
        *(constant("fraud.monitoring.drift", name) for name in ("MODERATE_PSI", "MAJOR_PSI")))),
    ("docs/experiments.md", lambda: "at most {:,} experiments and {} workers".format(
        constant("fraud.experiments.plan", "MAX_EXPERIMENTS"),
        constant("fraud.commands.sweep", "MAX_JOBS"))),
    ("docs/experiments.md", lambda: f"fraud sweep --seeds 5 --jobs 2 # seeds {seed()}.."
                                    f"{seed() + 5 - 1} on 2 queue workers"),  # from `seed` on
    ("docs/your-data.md", max_levels),
    ("docs/your-data.md", max_levels_example),
    ("docs/your-data.md", lambda: "max_levels: {}".format(
        constant("fraud.core.declaration", "MAX_LEVELS"))),
    ("docs/your-data.md", simulated_defaults),
    ("docs/your-data.md", lambda: f"memory_mb: {params()['features']['memory_mb']} "),
    ("docs/troubleshooting.md", overflow_bounds),
    ("docs/troubleshooting.md", lambda: "Echoed values are cut to {}".format(
        constant("fraud.errors", "ECHO_CHARS"))),
    ("docs/troubleshooting.md", lambda: "lines over {}".format(
        binary(constant("fraud.data.rawcsv", "MAX_LINE_BYTES")))),
    *(("docs/troubleshooting.md", lambda i=i: onnx_budgets()[i]) for i in range(4)),
    ("docs/troubleshooting.md", lambda: f"DVC ({dvc_version()}) rewrites `dvc.lock`"),
    ("docs/troubleshooting.md", lambda: f"and DVC ({dvc_version()}) deletes"),
    ("docs/troubleshooting.md", lambda: f"DVC {dvc_version()} writes `[]`"),
    ("CONTRIBUTING.md", lambda: "with a corpus of {} malformed input files".format(
        corpus_size("tests/unit/test_malformed_inputs.py", "BAD"))),
    ("CONTRIBUTING.md", lambda: "a corpus of {} bad params files, and {} hostile values".format(
        corpus_size("tests/stages/test_bad_params.py", "BAD_PARAMS"),
        corpus_size("tests/stages/test_bad_params.py", "HOSTILE_VALUES"))),
]


# The offline example table of docs/your-data.md (tools/example_table.py) and its e2e test.

def example_table_defaults() -> str:
    import inspect

    from tools.example_table import FEATURES, example_table

    defaults = inspect.signature(example_table).parameters
    return (f"{len(FEATURES)} numeric columns `f0`…`f{len(FEATURES) - 1}`",
            (f"(about {defaults['fraud_rate'].default * 100:.0f} % fraud). Write "
             f"{defaults['rows'].default:,} rows"))


def example_table_e2e_rows() -> str:
    source = (ROOT / "tests/e2e/test_other_table_e2e.py").read_text(encoding="utf-8")
    rows = re.search(r"example_table\(([\d_]+),", source)
    assert rows, "tests/e2e/test_other_table_e2e.py: no example_table(<rows>, ...) call"
    return f"runs this layout ({int(rows.group(1)):,} rows"


QUOTES += [
    ("docs/your-data.md", lambda: example_table_defaults()[0]),
    ("docs/your-data.md", lambda: example_table_defaults()[1]),
    ("docs/your-data.md", example_table_e2e_rows),
]


# Figures of the shipped model, a DVC output: checked where the checkout has the files
# dvc.lock records (after `dvc repro` or `dvc pull`), skipped in a fresh clone.

def shipped_card() -> dict:
    from tools.render_docs import NeedsOutputs, committed_output

    try:
        path = committed_output(ROOT, "models/fraud_detector.json")
    except NeedsOutputs as reason:
        pytest.skip(str(reason))
    return json.loads(path.read_text(encoding="utf-8"))


def shipped_operators() -> int:
    import onnx

    from tools.render_docs import NeedsOutputs, committed_output

    try:
        path = committed_output(ROOT, "models/fraud_detector.onnx")
    except NeedsOutputs as reason:
        pytest.skip(str(reason))
    return len(onnx.load(str(path)).graph.node)


SHIPPED: list[tuple[str, Callable[[], str]]] = [
    ("docs/serving.md", lambda: "(`monitoring_reference`, ~{:.0f} KB:".format(
        len(json.dumps(shipped_card()["monitoring_reference"])) / 1000)),
    ("docs/pipeline.md", lambda: "the card lists the shipped model's top {}.".format(
        WORDS[len(shipped_card()["importance"]["test_frauds"])])),
    ("docs/troubleshooting.md", lambda: f"(the largest detector has {shipped_operators()})"),
]


@pytest.mark.parametrize(("doc", "quote"), SHIPPED,
                         ids=[f"{doc}:{number}" for number, (doc, _) in enumerate(SHIPPED)])
def test_a_figure_of_the_shipped_model_is_the_committed_runs(
        doc: str, quote: Callable[[], str]) -> None:
    expected = quote()
    assert expected in prose(doc), f"{doc} should say {expected!r}: reread that sentence"


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
