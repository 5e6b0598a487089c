"""The sweep's comparison: t-intervals, paired tests, Holm (src/fraud/experiments/stats.py),
reading `dvc exp show --json` (recorded for real in a tiny DVC repository;
src/fraud/experiments/show.py), models compared per grid point and ranked on validation
(src/fraud/experiments/compare.py), the report (src/fraud/experiments/report.py), and the
CLI's argument errors."""

from __future__ import annotations

import importlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats

from fraud.core.files import json_dumps
from fraud.errors import PipelineError
from fraud.experiments import compare
from fraud.experiments import report as compare_report
from fraud.experiments import show as exp_show
from fraud.experiments import stats as fraud_stats
from fraud.experiments.plan import expand

REPO = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------------- statistics


def test_t_quantiles_match_the_table() -> None:
    # Student's t, two-sided 95 %: the classic table values.
    for df, value in ((1, 12.706), (2, 4.303), (4, 2.776), (9, 2.262), (29, 2.045)):
        assert fraud_stats.t_quantile(df) == pytest.approx(value, abs=5e-4)
    assert fraud_stats.t_quantile(4, 0.99) == pytest.approx(4.604, abs=5e-4)


def test_mean_interval_known_values_and_scipy() -> None:
    interval = fraud_stats.mean_interval([1, 2, 3, 4, 5])
    assert interval.n == 5 and interval.mean == 3
    assert interval.sd == pytest.approx(math.sqrt(2.5))
    half = 2.7764451 * math.sqrt(2.5) / math.sqrt(5)
    assert (interval.low, interval.high) == (pytest.approx(3 - half), pytest.approx(3 + half))
    values = [0.781, 0.742, 0.815, 0.801, 0.760, 0.799]
    low, high = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values),
                                 scale=stats.sem(values))
    got = fraud_stats.mean_interval(values)
    assert (got.low, got.high) == (pytest.approx(low), pytest.approx(high))


def test_mean_interval_of_one_value_has_no_interval() -> None:
    assert fraud_stats.mean_interval([0.7]) == fraud_stats.Interval(n=1, mean=0.7, sd=None,
                                                                    low=None, high=None)
    with pytest.raises(PipelineError):
        fraud_stats.mean_interval([0.5, float("nan")])


# Per-seed PR-AUCs that move a lot with the split (the seed), as on the real data.
SPLIT_EFFECT = np.array([0.74, 0.81, 0.70, 0.78, 0.83])


def test_paired_difference_is_significant_when_consistent_despite_split_noise() -> None:
    better = SPLIT_EFFECT + 0.03 + np.array([0.004, -0.003, 0.002, -0.001, 0.000])
    worse = SPLIT_EFFECT
    # Unpaired, the two means' intervals overlap: the split noise swamps 0.03...
    a, b = fraud_stats.mean_interval(better), fraud_stats.mean_interval(worse)
    assert a.low < b.high
    # ...paired over the same seeds, the difference is far beyond the noise.
    pair = fraud_stats.paired_difference(better, worse, "weighted", "baseline", "prc")
    assert pair.beyond_noise
    assert pair.difference.mean == pytest.approx(0.0304)
    assert pair.difference.low > 0.02
    reference = stats.ttest_rel(better, worse)
    assert pair.t == pytest.approx(reference.statistic)
    assert pair.p == pytest.approx(reference.pvalue)
    assert pair.p < 1e-4


def test_paired_difference_is_not_significant_when_it_flips_sign() -> None:
    other = SPLIT_EFFECT + np.array([0.02, -0.03, 0.01, -0.015, 0.012])
    pair = fraud_stats.paired_difference(other, SPLIT_EFFECT, "oversample", "baseline", "prc")
    assert not pair.beyond_noise
    assert pair.difference.low < 0 < pair.difference.high
    assert pair.p == pytest.approx(stats.ttest_rel(other, SPLIT_EFFECT).pvalue)
    assert pair.p > 0.5
    assert fraud_stats.verdict(pair) == "no"


def test_paired_difference_without_spread() -> None:
    same = fraud_stats.paired_difference([0.5, 0.6, 0.7], [0.5, 0.6, 0.7])
    assert (same.t, same.p, same.beyond_noise) == (0.0, 1.0, False)
    shifted = fraud_stats.paired_difference([0.6, 0.7, 0.8], [0.5, 0.6, 0.7])
    assert shifted.t is None and shifted.p == 0.0 and shifted.beyond_noise
    with pytest.raises(PipelineError, match="same seeds"):
        fraud_stats.paired_difference([1, 2, 3], [1, 2])
    with pytest.raises(PipelineError, match="at least 2"):
        fraud_stats.paired_difference([1], [2])


def test_holm() -> None:
    assert fraud_stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert fraud_stats.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert fraud_stats.holm([]) == []


MODELS = ("baseline", "weighted", "oversample", "logreg")
STATS_METRICS = [key for key, _ in compare.METRICS]


def _per_seed(seeds: list[int]) -> dict[str, dict[int, dict[str, float]]]:
    """Weighted consistently 0.03 above baseline; oversample and the peer within noise."""
    rng = np.random.default_rng(0)
    shifts = {"baseline": 0.0, "weighted": 0.03, "oversample": 0.0, "logreg": 0.0}
    result: dict[str, dict[int, dict[str, float]]] = {row: {} for row in MODELS}
    for i, seed in enumerate(seeds):
        for row in MODELS:
            wobble = {"baseline": 0.0, "weighted": 0.002 * (-1) ** i}.get(row,
                                                                         rng.normal(0, 0.02))
            base = SPLIT_EFFECT[i]
            result[row][seed] = {"prc": base + shifts[row] + wobble,
                                 "val_prc": base + shifts[row] + wobble - 0.01,
                                 "auc": 0.95 + rng.normal(0, 0.01), "recall": 0.8,
                                 "precision": 0.1 + 0.01 * i}
    return result


def test_compare_statistics() -> None:
    seeds = [42, 43, 44, 45, 46]
    result = fraud_stats.compare(_per_seed(seeds), seeds, STATS_METRICS)
    assert list(result.summary) == list(MODELS)
    assert result.summary["weighted"]["prc"].n == 5
    assert len(result.paired) == 6 * len(STATS_METRICS)  # every pair of 4 rows, every metric
    by_key = {(p.first, p.second, p.metric): p for p in result.paired}
    weighted = by_key[("baseline", "weighted", "prc")]
    assert weighted.difference.mean == pytest.approx(-0.03, abs=0.002)
    assert weighted.beyond_noise and fraud_stats.verdict(weighted) == "yes"
    assert weighted.p <= weighted.p_holm <= min(1.0, 6 * weighted.p)  # Holm <= Bonferroni
    recall = by_key[("baseline", "weighted", "recall")]
    assert recall.p == 1.0 and not recall.beyond_noise  # identical recalls
    assert fraud_stats.rank(result, "val_prc")[0] == "weighted"


def test_a_metric_missing_from_a_row_is_left_out_not_ranked_on_test() -> None:
    seeds = [1, 2, 3]
    per_seed = _per_seed(seeds)
    del per_seed["oversample"][2]["val_prc"]  # an older metrics file on one seed
    result = fraud_stats.compare(per_seed, seeds, STATS_METRICS)
    assert "val_prc" not in result.summary["oversample"]
    assert "prc" in result.summary["oversample"]
    assert not any("oversample" in (p.first, p.second) and p.metric == "val_prc"
                   for p in result.paired)
    assert sum(p.metric == "val_prc" for p in result.paired) == 3  # pairs of the other 3
    assert fraud_stats.rank(result, "val_prc") is None  # no ranking at all rather than on test


def test_compare_needs_every_seed() -> None:
    per_seed = _per_seed([1, 2])
    del per_seed["oversample"][2]
    with pytest.raises(PipelineError, match="oversample: no metrics for seed"):
        fraud_stats.compare(per_seed, [1, 2], STATS_METRICS)


def _experiments(seeds, per_seed, chosen="weighted", grid=(), fixed=None):
    """Finished experiments as exp_show reads them, named as the sweep names them."""
    points = expand(seeds, dict(grid), fixed or {}, "sweep", "abcdef12")
    found = {}
    for point in points:
        metrics = {f"metrics/{m}.json": dict(v[point.seed]) for m, v in per_seed.items()}
        metrics["metrics/evaluate.json"] = {"model": chosen, **per_seed[chosen][point.seed]}
        params = {"seed": point.seed, "model": {"hidden_units": 16}}
        for key, value in point.settings:
            params[key.split(".")[0]][key.split(".")[1]] = int(value)
        found[point.name] = exp_show.Experiment(point.name, "f" * 40, "e" * 40, "success",
                                                params, metrics)
    return points, found


def test_models_are_ranked_on_validation_and_the_report_labels_test() -> None:
    seeds = [42, 43, 44, 45, 46]
    per_seed = _per_seed(seeds)
    for seed in seeds:  # oversample: best on test, worst on validation
        per_seed["oversample"][seed].update(prc=0.99, val_prc=0.1)
    points, experiments = _experiments(seeds, per_seed)
    groups, skipped = compare.compare_sweep(points, experiments, {})
    assert skipped == [] and len(groups) == 1
    group = groups[0]
    assert group.ranking[0] == "weighted" and group.ranking[-1] == "oversample"
    assert group.chosen == dict.fromkeys(seeds, "weighted")
    assert group.per_seed["baseline"][43] == per_seed["baseline"][43]
    markdown = compare_report.to_markdown(groups, {"seeds": seeds, "code": "abcdef12",
                                                   "fixed": {"train.epochs": "3"},
                                                   "seconds": 12.0, "jobs": 2})
    head = ("| model | validation PR-AUC (AP) | test PR-AUC | test ROC-AUC | test recall | "
            "test precision |")
    assert head in markdown
    table = markdown.split(head)[1].split("\n\n")[0]
    order = [line.split(" | ")[0][2:] for line in table.strip().splitlines()[1:]]
    assert order == ["weighted", "baseline", "logreg", "oversample", "chosen (weighted ×5)"]
    assert "Best first on validation (`val_prc`" in markdown
    assert "| baseline − weighted | test PR-AUC | -0.030 [" in markdown
    assert "test PR-AUC: beyond the noise: weighted > baseline by 0.030" in markdown
    assert "`train.epochs=3`" in markdown and "seed 46" in markdown
    report = json.loads(json_dumps(compare_report.to_json(groups, {"seeds": seeds})))
    assert report["groups"][0]["ranking"] == group.ranking
    assert set(report["groups"][0]["per_seed"]) == set(MODELS)
    assert report["groups"][0]["chosen"]["42"] == "weighted"


def test_without_val_prc_nothing_is_ranked(tmp_path: Path) -> None:
    seeds = [1, 2]
    per_seed = _per_seed(seeds)
    for row in per_seed.values():
        for values in row.values():
            del values["val_prc"]
    points, experiments = _experiments(seeds, per_seed)
    group = compare.compare_sweep(points, experiments, {})[0][0]
    assert group.ranking is None
    markdown = compare_report.to_markdown([group], {"seeds": seeds})
    assert "Not ranked: the metrics files lack `val_prc`" in markdown


def test_grid_points_are_compared_apart_and_params_are_checked() -> None:
    seeds = [1, 2, 3]
    per_seed = _per_seed(seeds)
    grid = {"model.hidden_units": ["16", "32"]}
    points, experiments = _experiments(seeds, per_seed, grid=grid)
    del experiments[points[-1].name]  # hidden_units=32, seed 3: not finished
    groups, skipped = compare.compare_sweep(points, experiments, {})
    assert [g.label for g in groups] == ["model.hidden_units=16", "model.hidden_units=32"]
    assert groups[1].seeds == [1, 2]
    assert skipped == ["model.hidden_units=32: compared over 2 of 3 seeds"]
    markdown = compare_report.to_markdown(groups, {"seeds": seeds, "grid": grid})
    assert "| grid point | seeds | best on validation |" in markdown
    # An experiment whose params are not what its name says is refused.
    name = points[0].name
    experiments[name] = exp_show.Experiment(name, "f" * 40, "e" * 40, "success",
                                            {"seed": 99, "model": {"hidden_units": 16}},
                                            experiments[name].metrics)
    with pytest.raises(PipelineError, match="ran with seed=99"):
        compare.compare_sweep(points, experiments, {})


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
def recorded_show(tmp_path_factory: pytest.TempPathFactory) -> tuple[list, Path]:
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


@pytest.mark.e2e  # real `dvc exp` commands: outside the fast loop
def test_experiments_from_a_real_exp_show(recorded_show) -> None:
    shown, repo = recorded_show
    experiments = exp_show.experiments_from_show(shown)
    assert set(experiments) == {"seeds-t-1", "seeds-t-2", "waiting"}
    assert experiments["waiting"].state == "queued"
    assert not exp_show.finished(experiments["waiting"])
    head = _run(repo, "git", "rev-parse", "HEAD").strip()
    refs = _run(repo, "git", "for-each-ref", "--format=%(objectname) %(refname)", "refs/exps")
    for name in ("seeds-t-1", "seeds-t-2"):
        experiment = experiments[name]
        assert experiment.baseline == head and exp_show.finished(experiment)
        assert f"{experiment.rev} " in refs and refs.split(experiment.rev)[1].split()[0] \
            .endswith("/" + name)
    one, two = experiments["seeds-t-1"], experiments["seeds-t-2"]
    assert one.params == {"seed": 1, "train": {"epochs": 3}}
    assert two.params == {"seed": 2, "train": {"epochs": 5}}
    metrics = exp_show.model_metrics(two)
    assert list(metrics) == ["baseline", "weighted", "oversample"]
    assert metrics["weighted"] == {"prc": 1.02, "auc": 0.9, "recall": 0.5, "precision": 0.25,
                                   "tp": 3}
    assert exp_show.chosen_model(two) is None  # no metrics/evaluate.json here
    exp_show.check_params(two, {"seed": "2", "train.epochs": "5"})
    with pytest.raises(PipelineError, match="train.epochs=5"):
        exp_show.check_params(two, {"train.epochs": "3"})


def test_chosen_model_reads_model_or_the_older_strategy_key() -> None:
    def experiment(values):
        return exp_show.Experiment("x", "r", "b", "success", {},
                                   {"metrics/evaluate.json": values})

    assert exp_show.chosen_model(experiment({"model": "gbdt", "prc": 1}))[0] == "gbdt"
    assert exp_show.chosen_model(experiment({"strategy": "baseline"}))[0] == "baseline"
    with pytest.raises(PipelineError, match="names no model"):
        exp_show.chosen_model(experiment({"prc": 0.5}))


def test_experiments_from_show_rejects_other_formats() -> None:
    with pytest.raises(PipelineError, match="DVC 3"):
        exp_show.experiments_from_show({"workspace": {}})
    failed = [{"rev": "abc", "experiments": [{"name": "x", "executor": None, "revs": [
        {"rev": "def", "name": "x", "data": None, "error": {"msg": "boom"}}]}]}]
    found = exp_show.experiments_from_show(failed)
    assert found["x"].state == "failed" and not exp_show.finished(found["x"])
    # A failed run and a later successful one of the same name: the success counts.
    ok = {"rev": "fed", "name": "x", "data": {"metrics": {"m.json": {"data": {"a": 1}}}}}
    both = [{"rev": "abc", "experiments": [failed[0]["experiments"][0],
                                           {"name": "x", "executor": None, "revs": [ok]}]}]
    assert exp_show.finished(exp_show.experiments_from_show(both)["x"])


# ---------------------------------------------------------------------------- the CLI


CLI_ERRORS = [
    (["--seeds", "1"], "at least 2 seeds"),
    (["--seed-list", "4,4"], "repeated"),
    (["--seeds", "3", "--set", "seed=1"], "--seeds or --seed-list"),
    (["--seeds", "3", "--set", "train.epochs"], "KEY=VALUE"),
    (["--seeds", "3", "--jobs", "0"], "--jobs"),
    (["--seeds", "3", "--grid", "seed=1,2"], "--seeds or --seed-list"),
    (["--seeds", "3", "--grid", "model.dropout=0.1,0.1"], "distinct"),
    (["--seeds", "3", "--grid", "a.b=1,2", "--set", "a.b=3"], "both in --grid and --set"),
    (["--seeds", "3", "--shard", "3/2"], "--shard"),
    (["--seeds", "3", "--report-only", "--push", "origin"], "--report-only"),
]
CLI_MODULES = ["fraud.commands.sweep", "src.compare_seeds"]


def assert_one_usage_line(status: int | str | None, stderr: str, fragment: str) -> None:
    assert status == 2, stderr  # an argument error, as argparse's own
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], lines


@pytest.mark.parametrize("args, fragment", CLI_ERRORS)
@pytest.mark.parametrize("module", CLI_MODULES)
def test_cli_argument_errors_are_one_line(args, fragment, module, capsys,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process, through cli.run as `python -m` runs it (a process per case costs ~0.7 s
    of imports; test_cli_argument_error_in_a_process runs one of them for real)."""
    from fraud.core.cli import run

    monkeypatch.chdir(REPO)  # fails before any dvc command: safe in the project itself
    main = importlib.import_module(module).main
    capsys.readouterr()
    with pytest.raises(SystemExit) as stopped:
        run(main, args)
    assert_one_usage_line(stopped.value.code, capsys.readouterr().err, fragment)


@pytest.mark.parametrize("module", CLI_MODULES)
def test_cli_argument_error_in_a_process(module) -> None:
    args, fragment = CLI_ERRORS[0]
    done = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO,
                          capture_output=True, text=True,
                          env={**os.environ, "DVC_NO_ANALYTICS": "1"})
    assert_one_usage_line(done.returncode, done.stderr, fragment)


def test_cli_outside_a_git_repository(tmp_path: Path, stage_error) -> None:
    (tmp_path / ".dvc").mkdir()
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    done = subprocess.run([sys.executable, "-m", "src.sweep", "--seeds", "2"],
                          cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "DVC_NO_ANALYTICS": "1",
                               "PYTHONPATH": str(REPO), "GIT_CEILING_DIRECTORIES":
                               str(tmp_path.parent)})
    stage_error(done, "not a git repository with a commit")


def test_cli_checks_the_mirror_before_queuing(tmp_path: Path, stage_error) -> None:
    # A queued run would fail in its temporary copy, visible only in `dvc queue logs`.
    done = subprocess.run([sys.executable, "-m", "src.sweep", "--seeds", "2"], cwd=REPO,
                          capture_output=True, text=True,
                          env={**os.environ, "DVC_NO_ANALYTICS": "1",
                               "FRAUD_DATA_MIRROR": "no/such/creditcard.csv.gz"})
    line = stage_error(done, "FRAUD_DATA_MIRROR=no/such/creditcard.csv.gz: no such file")
    assert str(REPO / "no/such/creditcard.csv.gz") in line  # resolved, and says from where
