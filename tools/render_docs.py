#!/usr/bin/env python3
"""Rewrite the generated blocks of the docs from the files that hold the numbers.

Numbers copied by hand go stale: each rerun of the pipeline moves the last digits, and the
copy keeps the old ones. So every table of results in the docs sits between markers

    <!-- render: NAME -->
    ...
    <!-- /render -->

and this script rewrites what is between them from `metrics/*.json` (the committed run) or
`reports/sweeps/sweep.md` (the committed sweep report). A few blocks (example outputs of the
shipped model) are rendered from DVC outputs, not from git: they are rewritten only where
those outputs exist and are the ones `dvc.lock` records (after `dvc repro`), and left as they
are elsewhere (a fresh clone). Run it from the repository root after `dvc repro` or a sweep,
and commit the result:

    python -m tools.render_docs           # rewrite the blocks in place
    python -m tools.render_docs --check   # exit 1 and name the stale blocks (a test does this)

Prose around a block is not rewritten: when a block changes, reread the sentences next to it.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import io
import json
import re
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
DOC_GLOBS = ("README.md", "CONTRIBUTING.md", "docs/*.md")
SWEEP_REPORT = Path("reports/sweeps/sweep.md")
BLOCK = re.compile(r"(<!-- render: (?P<name>[\w:.=-]+) -->\n)(?P<body>.*?)(<!-- /render -->)",
                   flags=re.DOTALL)


class NeedsOutputs(Exception):
    """A block rendered from DVC outputs that this checkout lacks (or has from another run)."""


def _json(root: Path, relative: str) -> dict:
    return json.loads((root / relative).read_text(encoding="utf-8"))


@functools.lru_cache(maxsize=16)
def _md5(path: Path, size: int, mtime_ns: int) -> str:
    """DVC's checksum of a file (the raw CSV is 150 MB: read once per change, not per block)."""
    digest = hashlib.md5()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def committed_output(root: Path, relative: str) -> Path:
    """`relative`, a DVC output, if it is the file `dvc.lock` records: an example output
    rendered from any other copy would not be the committed run's."""
    lock = yaml.safe_load((root / "dvc.lock").read_text(encoding="utf-8"))
    recorded = {entry["path"]: entry.get("md5") for stage in lock["stages"].values()
                for entry in stage.get("deps", []) + stage.get("outs", [])}
    path = root / relative
    if not path.is_file():
        raise NeedsOutputs(f"{relative} is missing (run dvc repro)")
    status = path.stat()
    if _md5(path, status.st_size, status.st_mtime_ns) != recorded.get(relative):
        raise NeedsOutputs(f"{relative} is not the file dvc.lock records (run dvc repro)")
    return path


def _markdown_table(rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + " --- |" * len(rows[0])]
    lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
    return "\n".join(lines) + "\n"


def committed_run_table(root: Path) -> str:
    """`fraud summary`'s rows as Markdown, with the test confusion counts beside."""
    from fraud.commands import summary

    table = [(*summary.HEADER, "test tp / fp / fn")]
    for row in summary.rows(root / "metrics"):
        metrics = _json(root, f"metrics/{row[0].rstrip(' *')}.json")
        table.append((row[0].replace(" *", " \\*"), *row[1:],
                      f"{metrics['tp']} / {metrics['fp']:,} / {metrics['fn']}"))
    return _markdown_table(table) + "\n\\* chosen by `evaluate` (`metrics/evaluate.json`)\n"


def committed_run_setting(root: Path) -> str:
    """One sentence: on what the committed run was made, and what `evaluate` chose."""
    params = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8"))
    data, chosen = _json(root, "metrics/data.json"), _json(root, "metrics/evaluate.json")
    grouped = "duplicates grouped" if params["split"]["group_duplicates"] else "duplicates kept"
    return (f"Real data ({data['rows']:,} rows, {data['frauds']} frauds), seed {params['seed']}, "
            f"`split.method: {params['split']['method']}` with {grouped}: "
            f"{data['val_frauds']} validation and {data['test_frauds']} test frauds. "
            f"`evaluate` chose **{chosen['model']}** (`train.strategy: {chosen['strategy']}`, "
            f"best `{chosen['select_by']}` on validation: {chosen['val_prc']:.3f}).\n")


def summary_output(root: Path) -> str:
    """What `fraud summary` prints on the committed run, as a terminal session."""
    from fraud.commands import summary

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        summary.main(["--metrics-dir", str(root / "metrics")])
    return f"```\n$ fraud summary\n{printed.getvalue()}```\n"


def strategy_switch_diff(strategy: str) -> Callable[[Path], str]:
    """What `dvc metrics diff` prints after `dvc exp run -S train.strategy=<strategy>`:
    `evaluate` then copies that model's figures into metrics/evaluate.json. Formatted by
    DVC's own table code, so the docs show what the command shows."""
    def render(root: Path) -> str:
        from dvc.compare import diff_table

        old, new = _json(root, "metrics/evaluate.json"), _switched(root, strategy)
        changes = {key: {"old": old[key], "new": new[key]} |
                   ({"diff": new[key] - old[key]} if isinstance(old[key], int | float) else {})
                   for key in old if old[key] != new[key]}
        table = diff_table({"metrics/evaluate.json": changes}, title="Metric", precision=4)
        rows = [list(table.keys()), *table]
        widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths,
                                                                          strict=True)).rstrip()
                 for row in rows]
        command = "dvc metrics diff --precision 4 --targets metrics/evaluate.json"
        return "```\n$ " + command + "\n" + "\n".join(lines) + "\n```\n"
    return render


def _switched(root: Path, strategy: str) -> dict:
    """metrics/evaluate.json after `dvc exp run -S train.strategy=<strategy>`: `evaluate`
    copies that model's figures into it."""
    return {**_json(root, "metrics/evaluate.json"), **_json(root, f"metrics/{strategy}.json"),
            "model": strategy, "strategy": strategy, "chosen_by": "train.strategy"}


def experiments_output(strategy: str) -> Callable[[Path], str]:
    """What `fraud experiments` prints after one `dvc exp run --temp -n try-<strategy>
    -S train.strategy=<strategy>` on the committed run, by its own formatting code."""
    def render(root: Path) -> str:
        from fraud.experiments.listing import Row, format_rows

        shipped = _json(root, "metrics/evaluate.json")
        rows = [Row("workspace", "workspace", [], shipped),
                Row("main (<commit>)", "baseline", [], shipped),
                Row(f"try-{strategy}", "success", [("train.strategy", strategy)],
                    _switched(root, strategy))]
        return f"```\n$ fraud experiments\n{format_rows(rows)}```\n"
    return render


def metrics_show_size(root: Path) -> str:
    """How wide `dvc metrics show` is on the committed run: DVC's own table of the metrics
    files dvc.yaml declares, measured as the command prints it."""
    from dvc.compare import metrics_table

    stages = yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    files = [next(iter(entry)) if isinstance(entry, dict) else entry
             for stage in stages.values() for entry in stage.get("metrics", [])]
    shown = {"workspace": {"data": {name: {"data": _json(root, name)} for name in files}}}
    table = metrics_table(shown, precision=5, round_digits=True)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        table.render()
    width = max(len(line) for line in printed.getvalue().splitlines())
    return textwrap.fill(f"`dvc metrics show` prints every key of the {len(files)} metrics "
                         f"files: one row per file, {len(table.keys()) - 1} columns beside the "
                         f"path, {width:,} characters wide. To compare the models in a "
                         "terminal:", width=95) + "\n"


def predict_output(root: Path) -> str:
    """`fraud predict` on the raw data with the shipped model, as the docs show it: run for
    real (the committed model and data only), its timings elided (they are the machine's)."""
    model = committed_output(root, "models/fraud_detector.onnx")
    raw = committed_output(root, "data/raw/creditcard.csv")
    with tempfile.TemporaryDirectory() as folder:
        scores = Path(folder) / "scores.csv"
        done = subprocess.run([sys.executable, "-m", "fraud", "predict",
                               str(model.relative_to(root)), str(raw.relative_to(root)),
                               "-o", str(scores)], cwd=root, capture_output=True, text=True,
                              check=True)
        head = "".join(scores.read_text(encoding="utf-8").splitlines(keepends=True)[:3])
    summary = re.sub(r"[\d.,]+(?= s\b| rows/s)", "…", done.stderr.strip().splitlines()[-1])
    summary = summary.replace(str(scores), "scores.csv")
    return (f"```\n$ fraud predict {model.relative_to(root)} {raw.relative_to(root)} "
            f"-o scores.csv\n{summary}\n\n$ head -3 scores.csv\n{head}```\n")


def explain_check(root: Path) -> str:
    """What `python -m bench.explain_check` finds on the committed run: do the reasons name
    what made a row flagged?"""
    for relative in ("models/fraud_detector.onnx", "models/fraud_detector.json",
                     "data/split/train.parquet", "data/split/test.parquet"):
        committed_output(root, relative)
    from bench.explain_check import check

    found = check(root, k=3, draws=20, seed=42)
    flagged, random = found["flagged"], found["unflagged_random_to_medians"]
    share = found["unflagged_reasons_to_medians"] / flagged
    random_share = random["mean"] / flagged
    text = (f"On the committed run (`python -m bench.explain_check`), the shipped "
            f"{found['model']} model flags {flagged} of the {found['test_rows']:,} test rows. "
            f"Setting each flagged row's three reasons to the training split's medians unflags "
            f"{found['unflagged_reasons_to_medians']} of them ({share * 100:.0f}\xa0%); "
            f"setting three other columns, drawn at random, unflags {random_share * 100:.0f}\xa0% "
            f"on average ({random['min']} to {random['max']} rows over {found['draws']} seeded "
            "draws).")
    return textwrap.fill(text, width=95).replace("\xa0", " ") + "\n"  # "96 %" on one line


def sweep_table(label: str) -> Callable[[Path], str]:
    """The per-model table of one grid point of the sweep report, as the report has it."""
    def render(root: Path) -> str:
        report = (root / SWEEP_REPORT).read_text(encoding="utf-8")
        section = report.split(f"\n## {label}\n", 1)
        if len(section) < 2:
            raise KeyError(f"{SWEEP_REPORT} has no section '## {label}'")
        table = re.search(r"^\| model \|.*?(?=\n\n|\Z)", section[1], flags=re.M | re.S)
        if table is None:
            raise KeyError(f"{SWEEP_REPORT}: no model table under '## {label}'")
        return table.group(0) + "\n"
    return render


def sweep_setting(root: Path) -> str:
    """Which seeds, code and command the committed sweep report comes from."""
    sweep = _json(root, SWEEP_REPORT.with_suffix(".json").as_posix())
    seeds = ", ".join(str(seed) for seed in sweep["seeds"])
    return (f"Report [{SWEEP_REPORT.as_posix()}]({'../' + SWEEP_REPORT.as_posix()}): "
            f"`{sweep['command']}`, code `{sweep['code']}`, seeds {seeds}, "
            f"{len(sweep['experiments'])} experiments on {sweep['jobs']} queue workers, "
            f"wall time {sweep['seconds']:.0f} s.\n")


def handbook(name: str) -> Callable[[Path], str]:
    """A simulated-transactions run beside the handbook's figures (reports/handbook)."""
    def render(root: Path) -> str:
        from tools.handbook_report import setting, table

        report = _json(root, f"reports/handbook/{name}.json")
        return setting(report) + "\n" + table(report)
    return render


RENDERERS: dict[str, Callable[[Path], str]] = {
    "committed-run-setting": committed_run_setting,
    "committed-run-table": committed_run_table,
    "summary-output": summary_output,
    "strategy-switch-diff:oversample": strategy_switch_diff("oversample"),
    "experiments-output:oversample": experiments_output("oversample"),
    "metrics-show-size": metrics_show_size,
    "predict-output": predict_output,
    "explain-check": explain_check,
    "sweep-setting": sweep_setting,
    "sweep-table:split.method=stratified": sweep_table("split.method=stratified"),
    "sweep-table:split.method=time": sweep_table("split.method=time"),
    **{f"handbook:{name}": handbook(name)
       for name in ("week", "week-unclipped", "all-days", "all-days-unclipped")},
}


# The blocks rendered from DVC outputs (the shipped model, the raw data, the splits), not git.
FROM_OUTPUTS = frozenset({"predict-output", "explain-check"})


def render_text(text: str, root: Path = REPO_ROOT, skipped: list[str] | None = None,
                from_outputs: bool = True) -> str:
    """`text` with every marked block rewritten; an unknown block name is an error. A block
    whose DVC outputs are missing raises NeedsOutputs, or, given a `skipped` list, is kept as
    it is and named there; so are all of them without `from_outputs` (a quicker check)."""
    def replace(match: re.Match[str]) -> str:
        name = match.group("name")
        if name not in RENDERERS:
            raise KeyError(f"unknown block '{name}'; known: {sorted(RENDERERS)}")
        try:
            if not from_outputs and name in FROM_OUTPUTS:
                raise NeedsOutputs("rendered from DVC outputs: not checked here")
            return match.group(1) + RENDERERS[name](root) + match.group(4)
        except NeedsOutputs as reason:
            if skipped is None:
                raise
            skipped.append(f"{name}: {reason}")
            return match.group(0)
    return BLOCK.sub(replace, text)


def doc_files(root: Path = REPO_ROOT) -> list[Path]:
    return sorted(path for pattern in DOC_GLOBS for path in root.glob(pattern))


def stale_files(root: Path = REPO_ROOT, skipped: list[str] | None = None,
                from_outputs: bool = True) -> list[Path]:
    """The doc files whose blocks differ from what their source files render (`skipped`,
    `from_outputs`: as render_text's)."""
    return [path for path in doc_files(root)
            if render_text(text := path.read_text(encoding="utf-8"), root, skipped,
                           from_outputs) != text]


def main(argv: list[str] | None = None) -> None:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--check", action="store_true", help="only report stale files; exit 1")
    args = cli.parse_args(argv)
    sys.path.insert(0, str(REPO_ROOT))
    skipped: list[str] = []
    if args.check:
        stale = stale_files(skipped=skipped)
        for path in stale:
            print(f"stale: {path.relative_to(REPO_ROOT)} (run python -m tools.render_docs)")
    else:
        stale = []
        for path in doc_files():
            text = path.read_text(encoding="utf-8")
            if (rendered := render_text(text, skipped=skipped)) != text:
                path.write_text(rendered, encoding="utf-8")
                print(f"rewrote {path.relative_to(REPO_ROOT)}")
    for reason in skipped:
        print(f"not rendered: {reason}")
    sys.exit(1 if stale else 0)


if __name__ == "__main__":
    main()
