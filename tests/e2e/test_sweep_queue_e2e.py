"""End to end on DVC's real queue, in a tiny repository whose one stage writes metrics files
from params.yaml in a blink (no TensorFlow): a failed experiment is reported with its log's
error line and does not stop the others; the report compares what finished; --report-only
names what is missing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fraud.data.download import MIRROR_ENV

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e

SCORE = """
import json, os, sys, yaml
p = yaml.safe_load(open("params.yaml"))
if p["seed"] == 3:
    print("error: seed 3 cannot be scored (a stand-in for a stage's one-line error)",
          file=sys.stderr)
    sys.exit(1)
os.makedirs("metrics", exist_ok=True)
for i, name in enumerate(["baseline", "logreg"]):
    value = p["seed"] / 100 + i / 10 + p["model"]["hidden_units"] / 1000
    json.dump({"val_prc": value, "prc": value + 0.01, "auc": 0.9, "recall": 0.5,
               "precision": 0.25}, open(f"metrics/{name}.json", "w"))
json.dump({"model": "logreg", "prc": 0.0}, open("metrics/evaluate.json", "w"))
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != MIRROR_ENV}
    env.update(DVC_NO_ANALYTICS="1", PYTHONPATH=str(ROOT), GIT_AUTHOR_NAME="t",
               GIT_AUTHOR_EMAIL="t@example.com", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.com")
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def _run(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True)
    assert not check or done.returncode == 0, (args, done.stdout, done.stderr)
    return done


def _write_project(repo: Path) -> None:
    """A one-stage DVC project whose stage writes three models' metrics from params.yaml."""
    (repo / "score.py").write_text(SCORE)
    (repo / "params.yaml").write_text("seed: 1\nmodel:\n  hidden_units: 16\n")
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"score": {
        "cmd": "python score.py", "deps": ["score.py"], "params": ["seed", "model"],
        "metrics": [{f"metrics/{n}.json": {"cache": False}}
                    for n in ("baseline", "logreg", "evaluate")]}}}))


def _commit_repository(repo: Path, message: str) -> None:
    """git and DVC initialised, and everything in `repo` committed."""
    _run(repo, "git", "init", "-q", "-b", "main")
    _run(repo, sys.executable, "-m", "dvc", "init", "-q")
    _run(repo, "git", "add", "-A")
    _run(repo, "git", "commit", "-q", "-m", message)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("tiny")
    _write_project(repo)
    (repo / ".gitignore").write_text("/reports/\n")
    _commit_repository(repo, "tiny")
    return repo


# --status-every 5: the failed experiment writes no ref; the queue's status tells (default
# every 15 s, to spare DVC processes on a long sweep; this one lasts seconds). Each
# `dvc queue status` costs ~0.7 s of CPU, and the test waits on DVC's queue for tens of seconds.
SWEEP = (sys.executable, "-m", "src.sweep", "--seed-list", "1,2,3", "--jobs", "2",
         "--poll", "0.5", "--status-every", "5")


def test_a_failure_is_reported_and_the_others_are_compared(tiny: Path) -> None:
    done = _run(tiny, *SWEEP, check=False)
    assert done.returncode == 1, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: 1 experiment(s) failed: sweep-") and \
        "(seed 3): error: seed 3 cannot be scored" in last, done.stderr
    assert "Traceback" not in done.stderr
    # The tail of `dvc queue logs` is printed, and the whole log saved.
    assert "    error: seed 3 cannot be scored" in done.stderr
    logs = list((tiny / "reports/sweeps/logs").glob("sweep-*-s3-*.log"))
    assert len(logs) == 1 and "Running stage 'score'" in logs[0].read_text()
    report = json.loads((tiny / "reports/sweeps/sweep.json").read_text())
    group = report["groups"][0]
    assert group["seeds"] == [1, 2]
    assert group["ranking"] == ["logreg", "baseline"]  # on val_prc
    assert group["per_seed"]["baseline"]["2"]["val_prc"] == pytest.approx(0.036)
    assert report["ran"] == 2 and len(report["failed"]) == 1
    assert "## Failed experiments" in done.stdout

    # Nothing is run again for --report-only, and it names what is missing.
    again = _run(tiny, *SWEEP, "--report-only", check=False)
    assert again.returncode == 1
    assert "1 of 3 experiments are not here: sweep-" in again.stderr
    assert "(seed 3)" in again.stderr


@pytest.fixture(scope="module")
def tracked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny project with its sweep report in git, as this project keeps reports/sweeps."""
    repo = tmp_path_factory.mktemp("tracked")
    _write_project(repo)
    (repo / "reports/sweeps").mkdir(parents=True)
    for name in ("sweep.md", "sweep.json"):
        (repo / "reports/sweeps" / name).write_text("an older sweep's report\n")
    _commit_repository(repo, "tiny, with a report")
    return repo


def _state(repo: Path) -> tuple[str, bytes, bytes, str]:
    return (_run(repo, "git", "status", "--porcelain", "--untracked-files=no").stdout,
            (repo / "reports/sweeps/sweep.md").read_bytes(),
            (repo / "reports/sweeps/sweep.json").read_bytes(),
            _run(repo, "git", "for-each-ref", "refs/exps").stdout)


def test_a_rerun_reuses_everything_and_rewrites_nothing(tracked: Path) -> None:
    """Issue 32: the rewritten report dirtied the tree, which renamed every experiment of the
    rerun; nothing was reused and the report was rewritten again. Now: reused, byte-identical,
    before and after the report is committed."""
    plan = (*SWEEP[:4], "1,2", *SWEEP[5:])
    first = _run(tracked, *plan)
    assert "0 experiment(s) reused, 2 to run" in first.stderr, first.stderr
    after_first = _state(tracked)
    assert after_first[0].split() == ["M", "reports/sweeps/sweep.json", "M",
                                      "reports/sweeps/sweep.md"]   # the new report, only
    again = _run(tracked, *plan, "--jobs", "1")
    assert "2 experiment(s) reused, 0 to run" in again.stderr, again.stderr
    assert "left as they are" in again.stderr
    assert _state(tracked) == after_first
    _run(tracked, "git", "commit", "-q", "-am", "the sweep's report")
    committed = _state(tracked)
    assert committed[0] == ""
    third = _run(tracked, *plan)
    assert "its experiments are reused" in third.stderr, third.stderr
    assert "2 experiment(s) reused, 0 to run" in third.stderr
    assert _state(tracked) == committed                          # clean, same bytes, same refs
