"""The seeds comparison's library: seeds and --set parsing, t-intervals, paired tests, Holm,
reading `dvc exp show --json` (recorded for real in a tiny DVC repository), the peer under
evaluate's threshold rules, the report, and the CLI's argument errors."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats

from src.fraud import compare as C
from src.fraud.data import clean, features_and_labels, fit_scaler, scale, split
from src.fraud.errors import PipelineError
from src.fraud.params import SplitParams
from src.fraud.files import json_dumps
from src.fraud.params import parse_params
from src.fraud.synthetic import generate_creditcard

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------- arguments


def test_seed_list_counts_from_the_committed_seed() -> None:
    assert C.seed_list(5, None, 42) == [42, 43, 44, 45, 46]
    assert C.seed_list(None, "3, 1,2", 42) == [3, 1, 2]


@pytest.mark.parametrize("count, listed, fragment", [
    (None, None, "either"), (3, "1,2", "either"), (1, None, "at least 2"),
    (None, "7", "at least 2"), (None, "1,1", "repeated"), (None, "1,x", "'x'"),
    (None, "1,-2", "0 to 2\\*\\*32"),
])
def test_seed_list_errors(count, listed, fragment) -> None:
    with pytest.raises(PipelineError, match=fragment):
        C.seed_list(count, listed, 42)


def test_parse_set() -> None:
    assert C.parse_set(["train.epochs=20", " evaluate.threshold = min_cost"]) == \
        {"train.epochs": "20", "evaluate.threshold": "min_cost"}
    for bad in ("train.epochs", "=3", "train.epochs="):
        with pytest.raises(PipelineError, match="KEY=VALUE"):
            C.parse_set([bad])
    with pytest.raises(PipelineError, match="--seeds"):
        C.parse_set(["seed=3"])


# ---------------------------------------------------------------------- statistics


def test_t_quantiles_match_the_table() -> None:
    # Student's t, two-sided 95 %: the classic table values.
    for df, value in ((1, 12.706), (2, 4.303), (4, 2.776), (9, 2.262), (29, 2.045)):
        assert C.t_quantile(df) == pytest.approx(value, abs=5e-4)
    assert C.t_quantile(4, 0.99) == pytest.approx(4.604, abs=5e-4)


def test_mean_interval_known_values_and_scipy() -> None:
    interval = C.mean_interval([1, 2, 3, 4, 5])
    assert interval.n == 5 and interval.mean == 3
    assert interval.sd == pytest.approx(math.sqrt(2.5))
    half = 2.7764451 * math.sqrt(2.5) / math.sqrt(5)
    assert (interval.low, interval.high) == (pytest.approx(3 - half), pytest.approx(3 + half))
    values = [0.781, 0.742, 0.815, 0.801, 0.760, 0.799]
    low, high = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values),
                                 scale=stats.sem(values))
    got = C.mean_interval(values)
    assert (got.low, got.high) == (pytest.approx(low), pytest.approx(high))


def test_mean_interval_of_one_value_has_no_interval() -> None:
    assert C.mean_interval([0.7]) == C.Interval(n=1, mean=0.7, sd=None, low=None, high=None)
    with pytest.raises(PipelineError):
        C.mean_interval([0.5, float("nan")])


# Per-seed PR-AUCs that move a lot with the split (the seed), as on the real data.
SPLIT_EFFECT = np.array([0.74, 0.81, 0.70, 0.78, 0.83])


def test_paired_difference_is_significant_when_consistent_despite_split_noise() -> None:
    better = SPLIT_EFFECT + 0.03 + np.array([0.004, -0.003, 0.002, -0.001, 0.000])
    worse = SPLIT_EFFECT
    # Unpaired, the two means' intervals overlap: the split noise swamps 0.03...
    a, b = C.mean_interval(better), C.mean_interval(worse)
    assert a.low < b.high
    # ...paired over the same seeds, the difference is far beyond the noise.
    pair = C.paired_difference(better, worse, "weighted", "baseline", "prc")
    assert pair.beyond_noise
    assert pair.difference.mean == pytest.approx(0.0304)
    assert pair.difference.low > 0.02
    reference = stats.ttest_rel(better, worse)
    assert pair.t == pytest.approx(reference.statistic)
    assert pair.p == pytest.approx(reference.pvalue)
    assert pair.p < 1e-4


def test_paired_difference_is_not_significant_when_it_flips_sign() -> None:
    other = SPLIT_EFFECT + np.array([0.02, -0.03, 0.01, -0.015, 0.012])
    pair = C.paired_difference(other, SPLIT_EFFECT, "oversample", "baseline", "prc")
    assert not pair.beyond_noise
    assert pair.difference.low < 0 < pair.difference.high
    assert pair.p == pytest.approx(stats.ttest_rel(other, SPLIT_EFFECT).pvalue)
    assert pair.p > 0.5
    assert C.verdict(pair) == "no"


def test_paired_difference_without_spread() -> None:
    same = C.paired_difference([0.5, 0.6, 0.7], [0.5, 0.6, 0.7])
    assert (same.t, same.p, same.beyond_noise) == (0.0, 1.0, False)
    shifted = C.paired_difference([0.6, 0.7, 0.8], [0.5, 0.6, 0.7])
    assert shifted.t is None and shifted.p == 0.0 and shifted.beyond_noise
    with pytest.raises(PipelineError, match="same seeds"):
        C.paired_difference([1, 2, 3], [1, 2])
    with pytest.raises(PipelineError, match="at least 2"):
        C.paired_difference([1], [2])


def test_holm() -> None:
    assert C.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert C.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert C.holm([]) == []


def _per_seed(seeds: list[int]) -> dict[str, dict[int, dict[str, float]]]:
    """Weighted consistently 0.03 above baseline; oversample and the peer within noise."""
    rng = np.random.default_rng(0)
    shifts = {"baseline": 0.0, "weighted": 0.03, "oversample": 0.0, "logistic_regression": 0.0}
    result: dict[str, dict[int, dict[str, float]]] = {row: {} for row in C.ROWS}
    for i, seed in enumerate(seeds):
        for row in C.ROWS:
            wobble = {"baseline": 0.0, "weighted": 0.002 * (-1) ** i}.get(row,
                                                                         rng.normal(0, 0.02))
            base = SPLIT_EFFECT[i]
            result[row][seed] = {"prc": base + shifts[row] + wobble,
                                 "auc": 0.95 + rng.normal(0, 0.01), "recall": 0.8,
                                 "precision": 0.1 + 0.01 * i}
    return result


def test_compare_and_reports() -> None:
    seeds = [42, 43, 44, 45, 46]
    per_seed = _per_seed(seeds)
    result = C.compare(per_seed, seeds)
    assert list(result.summary) == list(C.ROWS)
    assert result.summary["weighted"]["prc"].n == 5
    assert len(result.paired) == 6 * len(C.METRICS)  # every pair of 4 rows, every metric
    by_key = {(p.first, p.second, p.metric): p for p in result.paired}
    weighted = by_key[("baseline", "weighted", "prc")]
    assert weighted.difference.mean == pytest.approx(-0.03, abs=0.002)
    assert weighted.beyond_noise and C.verdict(weighted) == "yes"
    assert weighted.p <= weighted.p_holm <= min(1.0, 6 * weighted.p)  # Holm <= Bonferroni
    recall = by_key[("baseline", "weighted", "recall")]
    assert recall.p == 1.0 and not recall.beyond_noise  # identical recalls

    markdown = C.to_markdown(result, per_seed, {"baseline": "abcdef1234567", "dirty": [],
                                                "extra_params": {"train.epochs": "3"},
                                                "threshold": 0.5, "seconds": 12.0, "jobs": 1})
    assert "| strategy | PR-AUC | ROC-AUC | recall | precision |" in markdown
    for row in C.ROWS:
        assert re.search(rf"^\| {row} \| 0\.\d{{3}} \[0\.\d{{3}}, 0\.\d{{3}}\] \|", markdown,
                         re.M), row
    assert "| baseline − weighted | PR-AUC | -0.030 [" in markdown
    assert "PR-AUC: beyond the noise: weighted > baseline by 0.030" in markdown
    assert "`train.epochs=3`" in markdown and "seed 46" in markdown
    paired_section = markdown.split("## Paired")[1].split("## PR-AUC per seed")[0]
    assert "| PR-AUC |" in paired_section and "| recall |" not in paired_section

    report = json.loads(json_dumps(C.to_json(result, per_seed, {"baseline": "abc"})))
    assert report["seeds"] == seeds and report["baseline"] == "abc"
    assert set(report["per_seed"]) == set(C.ROWS)
    assert set(report["per_seed"]["weighted"]) == {str(s) for s in seeds}
    assert report["summary"]["oversample"]["auc"]["n"] == 5
    assert len(report["paired"]) == 24
    assert {p["verdict"] for p in report["paired"]} <= {"yes", "no", "yes, uncorrected only"}


def test_compare_needs_every_seed() -> None:
    per_seed = _per_seed([1, 2])
    del per_seed["oversample"][2]
    with pytest.raises(PipelineError, match="oversample: no metrics for seed"):
        C.compare(per_seed, [1, 2])


# ------------------------------------------------------- dvc exp show --json, for real


METRICS_SCRIPT = """
import json, os, yaml
p = yaml.safe_load(open("params.yaml"))
os.makedirs("metrics", exist_ok=True)
for i, name in enumerate(["baseline", "weighted", "oversample"]):
    json.dump({"prc": p["seed"] / 100 + i, "auc": 0.9, "recall": 0.5, "precision": 0.25,
               "tp": 3}, open(f"metrics/{name}.json", "w"))
"""


def _run(cwd: Path, *args: str) -> str:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t",
           "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com"}
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


@pytest.fixture(scope="module")
def exp_show(tmp_path_factory: pytest.TempPathFactory) -> tuple[list, Path]:
    """`dvc exp show --json` of a tiny repo: two finished experiments and a queued one."""
    repo = tmp_path_factory.mktemp("expshow")
    dvc = (sys.executable, "-m", "dvc")
    (repo / "make_metrics.py").write_text(METRICS_SCRIPT)
    (repo / "params.yaml").write_text("seed: 42\ntrain:\n  epochs: 3\n")
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"score": {
        "cmd": f"{sys.executable} make_metrics.py", "deps": ["make_metrics.py"],
        "params": ["seed", "train.epochs"],
        "metrics": [{f"metrics/{n}.json": {"cache": False}}
                    for n in ("baseline", "weighted", "oversample")]}}}))
    _run(repo, "git", "init", "-q", "-b", "main")
    _run(repo, *dvc, "init", "-q")
    _run(repo, *dvc, "repro", "-q")
    _run(repo, "git", "add", "-A")
    _run(repo, "git", "commit", "-q", "-m", "tiny")
    _run(repo, *dvc, "exp", "run", "--temp", "-q", "-n", "seeds-t-1", "-S", "seed=1")
    _run(repo, *dvc, "exp", "run", "--temp", "-q", "-n", "seeds-t-2", "-S", "seed=2",
         "-S", "train.epochs=5")
    _run(repo, *dvc, "exp", "run", "--queue", "-q", "-n", "waiting", "-S", "seed=3")
    shown = json.loads(_run(repo, *dvc, "exp", "show", "--json"))
    _run(repo, *dvc, "queue", "remove", "--all")
    return shown, repo


def test_experiments_from_a_real_exp_show(exp_show) -> None:
    shown, repo = exp_show
    experiments = C.experiments_from_show(shown)
    assert set(experiments) == {"seeds-t-1", "seeds-t-2"}  # not the queued one
    head = _run(repo, "git", "rev-parse", "HEAD").strip()
    refs = _run(repo, "git", "for-each-ref", "--format=%(objectname) %(refname)", "refs/exps")
    for name, experiment in experiments.items():
        assert experiment.baseline == head
        assert f"{experiment.rev} " in refs and refs.split(experiment.rev)[1].split()[0] \
            .endswith("/" + name)
    one, two = experiments["seeds-t-1"], experiments["seeds-t-2"]
    assert one.params == {"seed": 1, "train": {"epochs": 3}}
    assert two.params == {"seed": 2, "train": {"epochs": 5}}
    metrics = C.strategy_metrics(two, "metrics/{strategy}.json")
    assert list(metrics) == ["baseline", "weighted", "oversample"]
    assert metrics["weighted"] == {"prc": 1.02, "auc": 0.9, "recall": 0.5, "precision": 0.25,
                                   "tp": 3}
    with pytest.raises(PipelineError, match="no metrics file nope/baseline.json"):
        C.strategy_metrics(one, "nope/{strategy}.json")


def test_experiments_from_show_rejects_other_formats() -> None:
    with pytest.raises(PipelineError, match="DVC 3"):
        C.experiments_from_show({"workspace": {}})
    failed = [{"rev": "abc", "experiments": [{"name": "x", "executor": None, "revs": [
        {"rev": "def", "name": "x", "data": None, "error": {"msg": "boom"}}]}]}]
    assert C.experiments_from_show(failed) == {}


# --------------------------------------------------------------- the peer, thresholded


@pytest.fixture(scope="module")
def scaled() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    parts = split(clean(generate_creditcard(6000, 0.02, 5), 0.001),
                  SplitParams("stratified", True, 0.2, 0.2), 5)
    tables = {name: features_and_labels(getattr(parts, name)) for name in ("train", "val", "test")}
    scaler = fit_scaler(tables["train"][0])
    return {name: (scale(x, scaler, 5.0), y) for name, (x, y) in tables.items()}


def _params(raw: dict, **evaluate) -> object:
    raw = json.loads(json.dumps(raw))
    raw["evaluate"].update(evaluate)
    return parse_params(raw)


def test_peer_uses_evaluate_threshold_rules(scaled, raw_params) -> None:
    fixed = C.evaluate_peer(scaled["train"], scaled["val"], scaled["test"],
                            _params(raw_params, threshold=0.5))
    assert fixed["threshold"] == 0.5 and fixed["fit_seconds"] >= 0
    for key in ("prc", "auc", "recall", "precision", "tp", "fn", "val_recall", "cost"):
        assert key in fixed
    assert fixed["cost"] == 5 * fixed["fp"] + 500 * fixed["fn"]
    recall = C.evaluate_peer(scaled["train"], scaled["val"], scaled["test"],
                             _params(raw_params, threshold="target_recall", target_recall=0.95))
    assert recall["val_recall"] >= 0.95
    assert recall["prc"] == fixed["prc"]  # same model, another threshold
    cheap = C.evaluate_peer(scaled["train"], scaled["val"], scaled["test"],
                            _params(raw_params, threshold="min_cost", cost_fp=1, cost_fn=1000))
    assert cheap["threshold"] < 0.9
    with pytest.raises(PipelineError, match="amount"):
        C.evaluate_peer(scaled["train"], scaled["val"], scaled["test"],
                        _params(raw_params, threshold="min_cost", cost_fn="amount"))


# ---------------------------------------------------------------------------- the CLI


def test_paths_the_cli_reads_are_pipeline_outputs() -> None:
    from src import compare_seeds

    pipeline = yaml.safe_load((REPO / "dvc.yaml").read_text())
    variables = {k: v for entry in pipeline.get("vars", []) for k, v in entry.items()}

    def declared(stage: dict) -> set[str]:
        paths = set()
        for key in ("outs", "metrics"):
            for item in stage.get(key, []):
                path = item if isinstance(item, str) else next(iter(item))
                paths.add(re.sub(r"\$\{(\w+)\}", lambda m: variables[m.group(1)], path))
        return paths

    outputs = set().union(*(declared(stage) for stage in pipeline["stages"].values()))
    for strategy in ("baseline", "weighted", "oversample"):
        assert compare_seeds.METRICS_PATTERN.format(strategy=strategy) in outputs
    for name in ("train", "val", "test"):
        for kind in ("features", "labels"):
            assert compare_seeds.SCALED.format(split=name, kind=kind) in outputs
    for name in ("val", "test"):
        assert compare_seeds.SPLIT_TABLE.format(split=name) in outputs


@pytest.mark.parametrize("args, fragment", [
    (["--seeds", "1"], "at least 2 seeds"),
    (["--seed-list", "4,4"], "repeated"),
    (["--seeds", "3", "--set", "seed=1"], "--seeds or --seed-list"),
    (["--seeds", "3", "--set", "train.epochs"], "KEY=VALUE"),
    (["--seeds", "3", "--jobs", "0"], "--jobs"),
])
def test_cli_argument_errors_are_one_line(args, fragment, stage_error) -> None:
    # Fails before any dvc command: safe to run in the project itself.
    done = subprocess.run([sys.executable, "-m", "src.compare_seeds", *args], cwd=REPO,
                          capture_output=True, text=True,
                          env={**os.environ, "DVC_NO_ANALYTICS": "1"})
    stage_error(done, fragment)


def test_cli_outside_a_git_repository(tmp_path: Path, stage_error) -> None:
    (tmp_path / ".dvc").mkdir()
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    done = subprocess.run([sys.executable, "-m", "src.compare_seeds", "--seeds", "2"],
                          cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "DVC_NO_ANALYTICS": "1",
                               "PYTHONPATH": str(REPO), "GIT_CEILING_DIRECTORIES":
                               str(tmp_path.parent)})
    stage_error(done, "not a git repository with a commit")
