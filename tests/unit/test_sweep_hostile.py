"""Sweeps given bad arguments: one line, exit status 2, nothing queued, nothing left behind;
report intervals within [0, 1]; bootstrap resamples that depend on `seed` alone."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fraud.commands import sweep
from fraud.core.params import parse_params
from fraud.errors import PipelineError
from fraud.evaluation.metrics import bootstrap_intervals
from fraud.experiments import queue as dvc_exp
from fraud.experiments.plan import MAX_EXPERIMENTS, MAX_SEEDS, check_overrides, seed_list
from fraud.experiments.stats import mean_interval, rate_interval
from tests.conftest import REPO, stage_env

# (arguments, a fragment of the one error line)
BAD_ARGUMENTS = [
    (["--seed-list", "-1,2"], "got [-1]"),
    (["--seed-list", "1,x"], "'x' is not a whole number"),
    (["--seed-list", ",".join(map(str, range(MAX_SEEDS + 1)))], "at most 1,000"),
    (["--seeds", "100000000"], "--seeds 100,000,000: at most 1,000"),
    (["--seeds", "1"], "at least 2 seeds"),
    (["--seeds", "x"], "invalid int value: 'x'"),
    (["--jobs", "0"], "--jobs 0"),
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--grid", "modle.hidden_units=16,32"], "did you mean 'model.hidden_units'"),
    (["--grid", "model.hiden_units=16,32"], "no 'hiden_units' in model"),
    (["--grid", "+model.extra=1,2"], "not with +key or ~key"),
    (["--set", "++train.epochs=3"], "not with +key or ~key"),
    (["--set", "~train.epochs=3"], "not with +key or ~key"),
    (["--set", "other.yaml:train.epochs=3"], "params.yaml's keys only"),
    (["--set", "model=3"], "a section of params.yaml"),
    (["--set", "train.epochs.x=3"], "no 'x' in train.epochs"),
    (["--grid", "model.hidden_units=16,abc"], "model.hidden_units = 'abc' is invalid"),
    (["--set", "train.strategy=bogus"], "train.strategy"),
    (["--grid", "seed=1,2"], "the seed is what the sweep varies"),
    (["--grid", "model.hidden_units=" + ",".join(map(str, range(1, 600)))],
     f"at most {MAX_EXPERIMENTS:,}"),
    (["--grid", "bad\x1b[31mkey\nx=1,2"], "no such key"),
    (["--shard", "3/2"], "--shard '3/2'"),
    (["--jobs", "100000"], "from 1 to 64"),
    (["--poll", "nan"], "--poll nan"),
    (["--status-every", "-5"], "--status-every -5"),
    (["--stem", "../../escape"], "a file name, without folders"),
    (["--out-dir", "/dev/null"], "not a folder"),
    (["--prefix", "../x"], "--prefix '../x'"),
    (["--set", "train.epochs=\x1b[31m"], "train.epochs=\\x1b[31m: not a value DVC's -S"),
]

# Values DVC's `-S` (Hydra's grammar, written with ruamel.yaml: YAML 1.2) and the stages
# (PyYAML: YAML 1.1) read differently, interpolation, and Hydra's sweeps and functions, which
# make several experiments of one option (issue 32). Each is one line and exit status 2.
# tools/adversarial.py throws them at the sweep with BAD_ARGUMENTS.
HOSTILE_VALUES = [
    (["--set", "train.epochs=1:30"], ("DVC records '1:30' (params.yaml read as YAML 1.2), "
                                      "but the stages read 90")),
    (["--grid", "train.epochs=20,1:30"], "the stages read 90"),
    (["--set", "train.epochs=12:30:45"], "the stages read 45045"),
    (["--set", "split.group_duplicates=yes"], "DVC records 'yes'"),
    (["--set", "split.group_duplicates=off"], "the stages read False"),
    (["--set", "split.method=on"], "DVC records 'on'"),
    (["--set", "train.epochs=0x10"], "train.epochs = '0x10' is invalid: expected a number"),
    (["--set", "train.epochs=0o10"], "train.epochs = '0o10' is invalid: expected a number"),
    (["--set", "train.epochs=010"], "DVC records the text '010'"),
    (["--set", "train.epochs='16'"], "DVC records the text '16'"),
    (["--set", "model.dropout=.inf"], "model.dropout = '.inf' is invalid"),
    (["--set", "model.dropout=inf"], "model.dropout = inf is invalid: expected a finite"),
    (["--set", "download.url=${oc.env:HOME}"], "${...} is interpolation"),
    (["--grid", "download.url=${seed},synthetic"], "${...} is interpolation"),
    (["--set", "download.url=x\\${HOME}"], "${...} is interpolation"),
    (["--set", "split.method=choice(stratified,time)"], "Hydra's functions and sweeps"),
    (["--grid", "split.method=choice(a,b,c)"], "Hydra's functions and sweeps"),
    (["--set", "train.epochs=range(1,4)"], "Hydra's functions and sweeps"),
    (["--set", "model.dropout=interval(0,1)"], "Hydra's functions and sweeps"),
    (["--set", "download.url=glob(*)"], "Hydra's functions and sweeps"),
    (["--set", "train.epochs=int(3.5)"], "Hydra's functions and sweeps"),
    (["--set", "evaluate.candidates=sort([weighted,baseline])"], "Hydra's functions"),
    (["--set", "evaluate.candidates=shuffle([weighted,baseline])"], "Hydra's functions"),
    (["--set", "split.method=tag(a,stratified)"], "Hydra's functions and sweeps"),
    (["--set", "download.url=synthetic,synthetic"], "one experiment of each item"),
    (["--set", "train.epochs=[1"], "not a value DVC's -S can read"),
    (["--set", "train.epochs=~"], "not a value DVC's -S can read"),
    (["--grid", "model.hidden_units=16,16.0,1.6e1"], "16 and 16.0 are the same value"),
    (["--grid", "model.dropout=0.5,5e-1"], "0.5 and 5e-1 are the same value"),
    (["--grid", "split.method=time,'time'"], "time and 'time' are the same value"),
    (["--grid", "split.group_duplicates=true,True"], "true and True are the same value"),
]


@pytest.fixture
def no_dvc(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    """Records every DVC and git command instead of running it."""
    calls: list[tuple[str, ...]] = []

    def record(*args: Any, **kwargs: Any) -> Any:
        calls.append(tuple(map(str, args)))
        raise AssertionError(f"ran {args}")

    monkeypatch.setattr(dvc_exp, "dvc", record)
    monkeypatch.setattr(dvc_exp, "git", record)
    return calls


@pytest.mark.parametrize("arguments, fragment", BAD_ARGUMENTS + HOSTILE_VALUES)
def test_a_bad_argument_is_one_line_and_exit_2(arguments: list[str], fragment: str,
                                               no_dvc: list[tuple[str, ...]],
                                               tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    params = tmp_path / "params.yaml"
    params.write_bytes((REPO / "params.yaml").read_bytes())
    with pytest.raises(SystemExit) as info:
        sweep.main([*arguments, "--params", str(params)])
    err = capsys.readouterr().err
    assert info.value.code == 2, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    assert fragment in err and len(err) < 400, err
    assert "\x1b" not in err
    assert no_dvc == []                                   # nothing asked of DVC or git
    assert [p.name for p in tmp_path.iterdir()] == ["params.yaml"]  # no report, no logs


@pytest.mark.parametrize("arguments, fragment", [
    (["--seed-list", "-1,2"], "got [-1]"),
    (["--grid", "modle.hidden_units=16,32"], "did you mean"),
    (["--seeds", "100000000"], "at most 1,000"),
])
def test_as_a_command(arguments: list[str], fragment: str, tmp_path: Path) -> None:
    """In a folder that is no repository: had the check passed, DVC could queue nothing."""
    params = tmp_path / "params.yaml"
    params.write_bytes((REPO / "params.yaml").read_bytes())
    env = stage_env({"PYTHONPATH": str(REPO)})
    proc = subprocess.run([sys.executable, "-m", "src.sweep", *arguments, "--params",
                           str(params)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and fragment in proc.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["params.yaml"]


def test_a_params_file_that_is_no_file_is_one_line(no_dvc: list[tuple[str, ...]],
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """/dev/zero was read whole (forever) for its `seed`."""
    with pytest.raises(PipelineError, match="/dev/zero: not a file"):
        sweep.main(["--params", "/dev/zero"])
    assert no_dvc == []


def test_the_committed_keys_and_values_pass() -> None:
    text = (REPO / "params.yaml").read_text(encoding="utf-8")
    check_overrides(text, {"model.hidden_units": ["16", "32"], "evaluate.cost_fp": ["1e-3"]},
                    {"train.epochs": "3", "train.strategy": "auto"}, parse_params)


@pytest.mark.parametrize("key, value", [
    ("model.learning_rate", "1e-5"),      # written 1e-05: a string for PyYAML, the same number
    ("train.epochs", "1e3"),              # written 1000.0 by DVC, 1000 epochs for the stages
    ("train.epochs", "1.0e3"),
    ("train.epochs", "1_000"),            # Hydra's int: written 1000
    ("split.group_duplicates", "True"),   # Hydra's bool: written true
    ("train.oversample_steps_per_epoch", "null"),
    ("evaluate.candidates", "[baseline,gbdt]"),
    ("split.method", "'time'"),
    ("download.url", "'https://example.com/a,b.csv'"),
])
def test_values_read_alike_pass(key: str, value: str) -> None:
    check_overrides((REPO / "params.yaml").read_text(encoding="utf-8"), {}, {key: value},
                    parse_params)


def test_the_check_leaves_no_scratch_file(monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)
    text = (REPO / "params.yaml").read_text(encoding="utf-8")
    check_overrides(text, {"model.hidden_units": ["16", "32"]}, {}, parse_params)
    with pytest.raises(PipelineError, match="the stages read 90"):
        check_overrides(text, {}, {"train.epochs": "1:30"}, parse_params)
    assert list(tmp_path.iterdir()) == []


def test_another_project_s_values_are_compared_as_read() -> None:
    """Without this pipeline's typing, 16 and 16.0 are still one value; '010' is text for
    both readers, so it passes."""
    text = "seed: 1\nmodel:\n  width: 16\n  name: a\n"
    check_overrides(text, {"model.name": ["010", "b"]}, {}, lambda params: params)
    with pytest.raises(PipelineError, match="16 and 16.0 are the same value"):
        check_overrides(text, {"model.width": ["16", "16.0"]}, {}, lambda params: params)
    with pytest.raises(PipelineError, match="the stages read 90"):
        check_overrides(text, {}, {"model.name": "1:30"}, lambda params: params)


def test_seeds_are_bounded_before_a_list_is_built() -> None:
    with pytest.raises(PipelineError, match="at most 1,000"):
        seed_list(10 ** 12, None, 42)
    assert len(seed_list(MAX_SEEDS, None, 0)) == MAX_SEEDS


# --- report intervals --------------------------------------------------------------------------

RATES = [
    [0.0, 0.02, 0.45, 0.3, 0.03],        # precision near 0: the t-interval went below 0
    [1.0, 0.9, 1.0, 0.97, 0.99],         # recall near 1
    [0.0, 0.0, 0.0, 0.0, 0.0],
    [1.0, 1.0, 1.0],
    [0.6, 0.62, 0.58, 0.61, 0.59],
]


@pytest.mark.parametrize("values", RATES)
def test_rate_intervals_stay_within_0_and_1(values: list[float]) -> None:
    interval = rate_interval(values)
    assert interval.low is not None and interval.high is not None
    assert 0.0 <= interval.low <= interval.mean <= interval.high <= 1.0, interval
    assert interval.mean == pytest.approx(np.mean(values))


def test_the_plain_t_interval_would_leave_0_and_1() -> None:
    assert mean_interval(RATES[0]).low < 0 < rate_interval(RATES[0]).low + 1e-9  # type: ignore[operator]


def test_away_from_the_bounds_it_is_close_to_the_t_interval() -> None:
    plain, rate = mean_interval(RATES[4]), rate_interval(RATES[4])
    assert rate.low == pytest.approx(plain.low, abs=2e-3)
    assert rate.high == pytest.approx(plain.high, abs=2e-3)


def test_a_value_outside_0_and_1_is_refused() -> None:
    with pytest.raises(PipelineError, match=r"outside \[0, 1\]"):
        rate_interval([0.5, 1.2])


# --- evaluate's bootstrap --------------------------------------------------------------------

def _scored(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = (rng.random(5000) < 0.02).astype(int)
    scores = np.clip(rng.normal(0.2 + 0.5 * labels, 0.2), 0, 1).round(3)  # ties too
    return labels, scores


def test_the_threshold_moves_no_ranking_interval() -> None:
    """PR-AUC and ROC-AUC do not depend on the threshold, nor do their resamples: changing
    only evaluate.threshold once moved a PR-AUC interval."""
    labels, scores = _scored()
    results = [bootstrap_intervals(labels, scores, t, 300, seed=7) for t in (0.2, 0.5, 0.8)]
    for key in ("prc_low", "prc_high", "auc_low", "auc_high"):
        assert len({r[key] for r in results}) == 1, key
    assert results[0]["precision_low"] != results[2]["precision_low"]


def test_the_resamples_depend_on_the_seed() -> None:
    labels, scores = _scored()
    first = bootstrap_intervals(labels, scores, 0.5, 300, seed=7)
    assert first == bootstrap_intervals(labels, scores, 0.5, 300, seed=7)
    assert first != bootstrap_intervals(labels, scores, 0.5, 300, seed=8)


def test_the_two_step_draw_matches_a_row_bootstrap() -> None:
    """Drawing per rank position, then flagged or not, is the row bootstrap's distribution:
    the intervals agree with a plain row-by-row (class-stratified) bootstrap within noise."""
    labels, scores = _scored(1)
    ours = bootstrap_intervals(labels, scores, 0.45, 2000, seed=3)
    rng = np.random.default_rng(5)
    frauds, legit = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    flagged = scores >= 0.45
    precision = []
    for _ in range(2000):
        rows = np.concatenate([rng.choice(frauds, frauds.size), rng.choice(legit, legit.size)])
        hits = flagged[rows]
        # precision: frauds among the flagged rows (0 when none is flagged); numpy, not
        # sklearn's precision_score, whose input checks cost ~3 ms a call, 2000 times
        precision.append(labels[rows][hits].mean() if hits.any() else 0.0)
    low, high = np.quantile(precision, [0.025, 0.975])
    assert ours["precision_low"] == pytest.approx(low, abs=0.03)
    assert ours["precision_high"] == pytest.approx(high, abs=0.03)


# --- what DVC itself refuses -------------------------------------------------------------------

def test_dvc_s_error_line_is_quoted_not_its_footer(monkeypatch: pytest.MonkeyPatch) -> None:
    stderr = ("ERROR: unexpected error - 'modle' not found\n\n"
              "Having any troubles? Hit us up at https://dvc.org/support, we are always happy "
              "to help!\n")
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(
        a, 255, stdout="", stderr=stderr))
    with pytest.raises(PipelineError) as info:
        dvc_exp.dvc({}, "exp", "run", "--queue")
    assert "'modle' not found" in str(info.value) and "troubles" not in str(info.value)


def test_a_refused_queue_call_removes_what_this_sweep_queued(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The third `dvc exp run --queue` fails: the two queued before it are removed."""
    from fraud.experiments.plan import expand

    calls: list[tuple[str, ...]] = []

    def queue(env: Any, name: str, overrides: Any, force: bool = False) -> None:
        if len([c for c in calls if c[0] == "queue"]) == 2:
            raise PipelineError("dvc exp run --queue ... failed (exit 255): ERROR: no")
        calls.append(("queue", name))

    monkeypatch.setattr(dvc_exp, "show", lambda env, rev: {})
    monkeypatch.setattr(dvc_exp, "queue_status", lambda env: ({}, 0))
    monkeypatch.setattr(dvc_exp, "experiment_refs", dict)
    monkeypatch.setattr(dvc_exp, "queue", queue)
    monkeypatch.setattr(dvc_exp, "dvc", lambda env, *args, check=True: calls.append(args))
    points = expand([1, 2, 3, 4], {}, {}, "sweep", "0123abcd")
    plan = sweep.Sweep(points=points, mine=points, fixed={}, env={}, commit="0123abcd")
    with pytest.raises(PipelineError, match="ERROR: no"):
        sweep.run_share(plan, 1, False, 0.1, tmp_path / "logs")
    assert calls[-1] == ("queue", "remove", points[0].name, points[1].name)
    assert list(tmp_path.iterdir()) == []
