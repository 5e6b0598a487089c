"""The sweep's plan: seeds, --grid and --set parsing, shards, deterministic names (what
resuming and sharing between machines rest on), the mirror check, and the parsing of what
DVC's queue prints (status table, failed run's log)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fraud.errors import PipelineError
from fraud.experiments import queue as dvc_exp
from fraud.experiments.plan import (
    code_key,
    expand,
    experiment_name,
    groups,
    parse_grid,
    parse_set,
    parse_shard,
    seed_list,
    shard,
)

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def test_seed_list_counts_from_the_committed_seed() -> None:
    assert seed_list(5, None, 42) == [42, 43, 44, 45, 46]
    assert seed_list(None, "3, 1,2", 42) == [3, 1, 2]


@pytest.mark.parametrize("count, listed, fragment", [
    (None, None, "either"), (3, "1,2", "either"), (1, None, "at least 2"),
    (None, "7", "at least 2"), (None, "1,1", "repeated"), (None, "1,x", "'x'"),
    (None, "1,-2", "0 to 2\\*\\*32"),
])
def test_seed_list_errors(count, listed, fragment) -> None:
    with pytest.raises(PipelineError, match=fragment):
        seed_list(count, listed, 42)


def test_parse_set_and_grid() -> None:
    assert parse_set(["train.epochs=20", " evaluate.threshold = min_cost"]) == \
        {"train.epochs": "20", "evaluate.threshold": "min_cost"}
    assert parse_grid(["model.hidden_units=16, 32,64", "split.method=stratified,time"]) == \
        {"model.hidden_units": ["16", "32", "64"], "split.method": ["stratified", "time"]}
    for bad in ("train.epochs", "=3", "train.epochs="):
        with pytest.raises(PipelineError, match="KEY=VALUE"):
            parse_set([bad])
        with pytest.raises(PipelineError, match="KEY=VALUE"):
            parse_grid([bad])
    with pytest.raises(PipelineError, match="--seeds"):
        parse_set(["seed=3"])
    with pytest.raises(PipelineError, match="--seeds"):
        parse_grid(["seed=3,4"])
    with pytest.raises(PipelineError, match="given twice"):
        parse_set(["a.b=1", "a.b=2"])
    with pytest.raises(PipelineError, match="given twice"):
        parse_grid(["a.b=1,2", "a.b=3"])
    for bad in ("a.b=1,,2", "a.b=1,1"):
        with pytest.raises(PipelineError, match="distinct, non-empty"):
            parse_grid([bad])


def test_expand_is_grid_by_seed_in_order() -> None:
    points = expand([7, 8], {"a.x": ["1", "2"], "b.y": ["p", "q"]}, {"c.z": "9"}, "sweep",
                    "abc12345")
    assert [(p.seed, p.settings) for p in points] == [
        (seed, (("a.x", x), ("b.y", y))) for x in "12" for y in "pq" for seed in (7, 8)]
    assert points[0].overrides({"c.z": "9"}) == {"seed": "7", "a.x": "1", "b.y": "p",
                                                 "c.z": "9"}
    assert points[0].label == "a.x=1, b.y=p"
    assert len({p.name for p in points}) == len(points) == 8
    assert [len(g) for g in groups(points).values()] == [2, 2, 2, 2]
    with pytest.raises(PipelineError, match="both in --grid and --set"):
        expand([1, 2], {"a.x": ["1"]}, {"a.x": "2"}, "sweep", "abc12345")


def test_names_are_deterministic_and_cover_every_param() -> None:
    code = code_key(COMMIT)
    name = experiment_name("sweep", code, 43, (("model.hidden_units", "32"),), {"t.e": "3"})
    assert re.fullmatch(r"sweep-01234567-s43-[0-9a-f]{8}", name)
    # Same plan, same name: on another machine, in another run (resume), in any order of --set.
    assert name == experiment_name("sweep", code, 43, (("model.hidden_units", "32"),),
                                   {"t.e": "3"})
    assert experiment_name("s", code, 1, (), {"a": "1", "b": "2"}) == \
        experiment_name("s", code, 1, (), {"b": "2", "a": "1"})
    others = {experiment_name("sweep", code, 44, (("model.hidden_units", "32"),), {"t.e": "3"}),
              experiment_name("sweep", code, 43, (("model.hidden_units", "16"),), {"t.e": "3"}),
              experiment_name("sweep", code, 43, (("model.hidden_units", "32"),), {"t.e": "4"}),
              experiment_name("sweep", code, 43, (("model.hidden_units", "32"),), {}),
              experiment_name("sweep", code_key("f" * 40), 43, (("model.hidden_units", "32"),),
                              {"t.e": "3"}),
              experiment_name("other", code, 43, (("model.hidden_units", "32"),), {"t.e": "3"})}
    assert name not in others and len(others) == 6
    with pytest.raises(PipelineError, match="--prefix"):
        experiment_name("bad name", code, 1, (), {})


def test_code_key_includes_uncommitted_changes() -> None:
    assert code_key(COMMIT) == "01234567"
    dirty = code_key(COMMIT, b"diff --git a/params.yaml")
    assert dirty.startswith("01234567-") and len(dirty) == 15
    assert dirty != code_key(COMMIT, b"another diff")
    with pytest.raises(PipelineError, match="not a git commit"):
        code_key("HEAD")


def test_shards_are_disjoint_cover_the_sweep_and_balance() -> None:
    points = expand(list(range(10)), {"m.h": ["1", "2"]}, {}, "sweep", "abc12345")
    for n in (1, 2, 3, 7, 20, 25):
        shares = [shard(points, k, n) for k in range(1, n + 1)]
        names = [p.name for share in shares for p in share]
        assert sorted(names) == sorted(p.name for p in points)  # each exactly once
        sizes = [len(share) for share in shares]
        assert max(sizes) - min(sizes) <= 1
    # Seeds only: share 2 of 2 is every other seed.
    seeds = expand([42, 43, 44, 45], {}, {}, "sweep", "abc12345")
    assert [p.seed for p in shard(seeds, 2, 2)] == [43, 45]


@pytest.mark.parametrize("text, expected", [(None, (1, 1)), ("2/3", (2, 3)), (" 1 / 1 ", (1, 1))])
def test_parse_shard(text, expected) -> None:
    assert parse_shard(text) == expected


@pytest.mark.parametrize("text", ["0/2", "3/2", "2", "a/b", "1/0", "-1/2"])
def test_parse_shard_errors(text) -> None:
    with pytest.raises(PipelineError, match="--shard"):
        parse_shard(text)


def test_mirror_is_made_absolute_and_checked(tmp_path: Path) -> None:
    data = tmp_path / "data" / "creditcard.csv.gz"
    data.parent.mkdir()
    data.write_bytes(b"x")
    env = {"FRAUD_DATA_MIRROR": "data/creditcard.csv.gz"}
    assert dvc_exp.absolute_mirror(env, tmp_path) == str(data.resolve())
    assert dvc_exp.absolute_mirror({}, tmp_path) is None
    assert dvc_exp.absolute_mirror({"FRAUD_DATA_MIRROR": "https://x/y.csv"}, tmp_path) == \
        "https://x/y.csv"
    with pytest.raises(PipelineError, match="FRAUD_DATA_MIRROR=nope.csv: no such file"):
        dvc_exp.absolute_mirror({"FRAUD_DATA_MIRROR": "nope.csv"}, tmp_path)
    assert dvc_exp.environment(str(data))["FRAUD_DATA_MIRROR"] == str(data)


QUEUE_STATUS = """Task     Name                          Created    Status
0b2bbc4  sweep-abc-s3-1                04:42 AM   Failed
a47be90  sweep-abc-s3-1                04:43 AM   Queued
0adf40a  sweep-abc-s1-2                04:42 AM   Success
ba7f58d  sweep-abc-s2-3                Nov 27     Running

Worker status: 1 active, 2 idle
"""


def test_queue_status_parsing(monkeypatch) -> None:
    class Done:
        stdout = QUEUE_STATUS

    monkeypatch.setattr(dvc_exp, "dvc", lambda env, *args, check=True: Done())
    states, workers = dvc_exp.queue_status({})
    # A rerun waiting behind its failed first attempt is what counts.
    assert states == {"sweep-abc-s3-1": "Queued", "sweep-abc-s1-2": "Success",
                      "sweep-abc-s2-3": "Running"}
    assert workers == 3


def test_error_line_of_a_failed_run() -> None:
    log = ("Reproducing experiment 'x'\nRunning stage 'download':\n> python -m src.stages."
           "download --out data/raw/creditcard.csv\nerror: FRAUD_DATA_MIRROR=/m.csv: file not "
           "found\nERROR: failed to reproduce 'download': failed to run: python ..., exited "
           "with 1\n")
    assert dvc_exp.error_line(log) == "error: FRAUD_DATA_MIRROR=/m.csv: file not found"
    assert dvc_exp.error_line("a\nERROR: one\nERROR: two\n") == "ERROR: two"
    assert dvc_exp.error_line("just\nlines\n") == "lines"
    assert dvc_exp.error_line("") == "(no output)"


def test_resume_reuses_finished_waits_for_queued_and_reruns_failed(monkeypatch,
                                                                   tmp_path: Path) -> None:
    """What run_share asks of DVC, given what an interrupted sweep left behind."""
    from fraud.commands import sweep as sweep_cli
    from fraud.experiments.show import Experiment

    points = expand([1, 2, 3, 4, 5], {}, {"t.e": "2"}, "sweep", "abc12345")
    done, queued, failed, stale, new = points

    def experiment(point, state, metrics):
        return Experiment(point.name, "r", "b", state, {}, metrics)

    shown = {done.name: experiment(done, "success", {"metrics/baseline.json": {"prc": 1}}),
             failed.name: experiment(failed, "failed", {}),
             stale.name: experiment(stale, "success", {})}  # a ref without metrics
    calls: list[tuple] = []
    monkeypatch.setattr(sweep_cli.dvc_exp, "show", lambda env, rev: {
        **shown, **{p.name: experiment(p, "success", {"m": {}})
                    for p in points if p is not done}} if calls else shown)
    monkeypatch.setattr(sweep_cli.dvc_exp, "queue_status", lambda env: (
        {queued.name: "Queued", failed.name: "Failed"}, 0))
    monkeypatch.setattr(sweep_cli.dvc_exp, "queue", lambda env, name, overrides, force=False:
                        calls.append(("queue", name, overrides["seed"], force)))
    monkeypatch.setattr(sweep_cli.dvc_exp, "dvc", lambda env, *args, check=True:
                        calls.append(("dvc", *args)))
    monkeypatch.setattr(sweep_cli.dvc_exp, "start", lambda env, jobs:
                        calls.append(("dvc", "queue", "start", "-j", str(jobs))) or jobs)
    monkeypatch.setattr(sweep_cli.dvc_exp, "experiment_refs", dict)
    monkeypatch.setattr(sweep_cli.dvc_exp, "wait", lambda env, names, jobs, poll, say, before,
                        status_every:
                        calls.append(("wait", tuple(names))))
    sweep = sweep_cli.Sweep(points=points, mine=points, fixed={"t.e": "2"}, env={}, commit="c" * 40)
    sweep_cli.run_share(sweep, jobs=2, rerun=False, poll=0.0, logs=tmp_path)
    assert sweep.reused == [done.name]
    assert calls == [
        ("dvc", "queue", "remove", failed.name),             # the failed entry goes first
        ("queue", failed.name, "3", False),
        ("queue", stale.name, "4", True),                    # replaces the stale ref
        ("queue", new.name, "5", False),
        ("dvc", "queue", "start", "-j", "2"),
        ("wait", (queued.name, failed.name, stale.name, new.name)),  # queued: not again
    ]
    assert sweep.ran == [queued.name, failed.name, stale.name, new.name]
    assert sweep.failed == []


# What `dvc exp run -S train.epochs=<value>` writes to params.yaml, what DVC records (YAML 1.2)
# and what the stages read (PyYAML, YAML 1.1), measured with `dvc exp run -S` and
# `dvc exp show --json` in a scratch repository (DVC 3.67): the check rests on these.
WRITTEN = [
    ("1:30", "epochs: 1:30", "1:30", 90),
    ("12:30:45", "epochs: 12:30:45", "12:30:45", 45045),
    ("0x10", "epochs: '0x10'", "0x10", "0x10"),
    ("010", "epochs: '010'", "010", "010"),
    ("yes", "epochs: yes", "yes", True),
    ("1e3", "epochs: 1000.0", 1000.0, 1000.0),
    ("1.0e3", "epochs: 1000.0", 1000.0, 1000.0),
    ("1e-5", "epochs: 1e-05", 1e-05, "1e-05"),
    (".inf", "epochs: '.inf'", ".inf", ".inf"),
    ("True", "epochs: true", True, True),
]


@pytest.mark.parametrize("value, line, recorded, read", WRITTEN)
def test_what_dvc_writes_and_both_readers_read(value: str, line: str, recorded: object,
                                               read: object, tmp_path: Path) -> None:
    from fraud.experiments.overrides import read_as_dvc_writes

    path = tmp_path / "params.yaml"
    original = "seed: 1\ntrain:\n  epochs: 100  # a comment\n"
    [reading] = read_as_dvc_writes(original, {"train.epochs": value}, path, "--set").values()
    assert line in path.read_text(encoding="utf-8")
    assert (reading.dvc, type(reading.dvc)) == (recorded, type(recorded))
    assert (reading.stage, type(reading.stage)) == (read, type(read))


# --- a rerun of a finished sweep -------------------------------------------------------------

REPORT = ["reports/sweeps/sweep.md", "reports/sweeps/sweep.json"]


def _git(repo: Path, *args: str) -> str:
    import subprocess

    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com",
                           *args], cwd=repo, capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A committed project holding a sweep report, as the working folder."""
    (tmp_path / ".dvc").mkdir()
    (tmp_path / "params.yaml").write_text("seed: 1\n")
    (tmp_path / "reports/sweeps").mkdir(parents=True)
    for path in REPORT:
        (tmp_path / path).write_text("{}\n")
    _git(tmp_path, "init", "-q", "-b", "main")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-q", "-m", "c1")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_sweep_s_report_is_no_part_of_the_experiments_names(repo: Path) -> None:
    """A sweep rewrites its report: counted as a change, it renamed every experiment of the
    rerun, which then reused nothing."""
    (repo / REPORT[1]).write_text('{"new": 1}\n')
    base = dvc_exp.baseline("HEAD", REPORT)
    assert (base.dirty, base.diff) == ([], b"")
    assert dvc_exp.baseline("HEAD").dirty == [REPORT[1]]      # without the exclusion
    (repo / "params.yaml").write_text("seed: 2\n")
    base = dvc_exp.baseline("HEAD", REPORT)
    assert base.dirty == ["params.yaml"] and b"seed: 2" in base.diff and b"new" not in base.diff


def test_a_committed_report_keeps_the_sweep_s_commit(repo: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The report committed on top of the sweep's commit: the rerun finds the experiments of
    that commit under their names; with any other change, or one experiment missing, it runs
    from HEAD."""
    import argparse
    import json
    from dataclasses import replace

    from fraud.commands import sweep as sweep_cli
    from fraud.experiments.show import Experiment

    first = _git(repo, "rev-parse", "HEAD")
    (repo / REPORT[1]).write_text(json.dumps({"baseline": first}))
    _git(repo, "commit", "-q", "-am", "the report")
    args = argparse.Namespace(out_dir=Path("reports/sweeps"), stem="sweep", rev="HEAD",
                              prefix="sweep", shard=None)
    base = dvc_exp.baseline("HEAD", REPORT)
    points = expand([1, 2], {}, {}, "sweep", code_key(base.commit))
    sweep = sweep_cli.Sweep(points=points, mine=points, fixed={}, env={}, commit=base.commit)
    earlier = {p.name: p for p in expand([1, 2], {}, {}, "sweep", code_key(first))}
    shown = {name: Experiment(name, "r", first, "success", {}, {"metrics/m.json": {"prc": 1}})
             for name in earlier}
    asked: list[str] = []
    monkeypatch.setattr(dvc_exp, "show", lambda env, rev: asked.append(rev) or shown)
    found = sweep_cli.earlier_sweep(sweep, base, args)
    assert found is not None and asked == [first]
    again, again_base = found
    assert again.commit == again_base.commit == first
    assert [p.name for p in again.points] == list(earlier) == [p.name for p in again.mine]
    del shown[next(iter(earlier))]
    assert sweep_cli.earlier_sweep(sweep, base, args) is None   # one to run: from HEAD
    (repo / "params.yaml").write_text("seed: 3\n")
    _git(repo, "commit", "-q", "-am", "a change")
    asked.clear()
    later = dvc_exp.baseline("HEAD", REPORT)
    assert sweep_cli.earlier_sweep(replace(sweep, commit=later.commit), later, args) is None
    assert asked == []                                           # not even asked


def test_a_report_is_the_same_whatever_the_run_s_circumstances(tmp_path: Path) -> None:
    import json

    from fraud.commands.sweep import _same_report

    path = tmp_path / "sweep.json"
    report = {"baseline": "c" * 40, "groups": [{"per_seed": {"a": 0.5}}], "seconds": 647.0,
              "ran": 10, "reused": 0, "jobs": 2, "command": "python -m src.sweep -j 2"}
    path.write_text(json.dumps(report))
    rerun = {**report, "seconds": 3.1, "ran": 0, "reused": 10, "jobs": 1, "command": "x"}
    assert _same_report(path, json.dumps(rerun))
    assert not _same_report(path, json.dumps({**rerun, "groups": [{"per_seed": {"a": 0.6}}]}))
    assert not _same_report(path, json.dumps({**rerun, "failed": ["x"]}))
    assert not _same_report(tmp_path / "missing.json", json.dumps(rerun))


# ------------------------------------------------------------- prequential: --folds


def test_a_sweep_over_folds_is_grid_by_fold_at_one_seed() -> None:
    from fraud.experiments.plan import FOLD_KEY, fold_list

    folds = fold_list(3)
    assert folds == [0, 1, 2]
    points = expand([42], {"m.h": ["8", "16"]}, {"t.e": "3"}, "sweep", "abc12345", folds)
    assert [(p.seed, p.fold, p.settings) for p in points] == [
        (42, fold, (("m.h", h),)) for h in ("8", "16") for fold in folds]
    assert points[1].overrides({"t.e": "3"}) == {"seed": "42", FOLD_KEY: "1", "m.h": "8",
                                                 "t.e": "3"}
    assert [p.repetition for p in points] == [0, 1, 2, 0, 1, 2]
    assert points[2].repetition_label == "fold 2"
    assert all(re.fullmatch(r"sweep-abc12345-f[012]-[0-9a-f]{8}", p.name) for p in points)
    assert len({p.name for p in points}) == 6
    assert [len(g) for g in groups(points).values()] == [3, 3]
    again = expand([42], {"m.h": ["8", "16"]}, {"t.e": "3"}, "sweep", "abc12345", folds)
    assert [p.name for p in again] == [p.name for p in points]  # deterministic


def test_fold_names_differ_from_seed_names_and_seed_names_stay() -> None:
    """A seed sweep's names are what they were before folds (committed sweeps are reused);
    fold 0 at seed 42 is another experiment name than seed 42 without a fold."""
    code = code_key(COMMIT)
    plain = experiment_name("sweep", code, 42, (), {})
    assert plain == expand([42, 43], {}, {}, "sweep", code)[0].name
    assert plain.endswith("-s42-" + plain.rsplit("-", 1)[1])
    names = {experiment_name("sweep", code, 42, (), {}, fold) for fold in (0, 1, 2)}
    assert len(names) == 3 and plain not in names
    assert experiment_name("sweep", code, 42, (), {}, 1) != \
        experiment_name("sweep", code, 43, (), {}, 1)  # the seed is in the hash


def test_fold_errors() -> None:
    from fraud.experiments.plan import check_fold_free, check_size, fold_list

    for bad in (0, 1, 51):
        with pytest.raises(PipelineError, match=f"--folds {bad}: expected a whole number "
                                                "from 2 to 50"):
            fold_list(bad)
    with pytest.raises(PipelineError, match="--set split.fold: --folds sets it"):
        check_fold_free({}, {"split.fold": "1"})
    with pytest.raises(PipelineError, match="--grid split.fold: --folds sets it"):
        expand([42], {"split.fold": ["0", "1"]}, {}, "sweep", "abc12345", [0, 1])
    with pytest.raises(PipelineError, match="at one seed"):
        expand([42, 43], {}, {}, "sweep", "abc12345", [0, 1])
    with pytest.raises(PipelineError, match=r"1,010 experiments \(10 folds x 101 grid"):
        check_size(list(range(10)), {"a.b": [str(i) for i in range(101)]}, "folds")
