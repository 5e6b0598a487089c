"""End to end, no network: a sweep shared by machines through a git remote (a local bare
repository) and a DVC remote (a local folder), on the small synthetic data of
tests/synthetic_project.py.

  origin   the session's built project (seed 42) with the DVC remote, dvc push, git push
  whole    git clone, dvc pull, dvc repro (runs no stage), then the whole sweep (42, 43),
           2 queue workers
  share2   git clone, share 2/2 (seed 43) from scratch, dvc exp push
  share1   git clone, dvc pull, share 1/2 (seed 42), dvc exp push
  report   git clone, --report-only --pull: the per-seed metrics of `whole`, computing nothing

The three sweeps run at the same time (three machines), which also keeps the test short.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fraud.core.models import STRATEGIES
from fraud.experiments.show import MODELS
from tests.synthetic_project import copy_project, dvc, env, sh

# --poll 2: a finished experiment is seen by its ref (one git call). --status-every 60: each
# `dvc queue status` costs ~0.7 s of CPU, three sweeps share 2 cores with the rest of the
# suite, and no experiment here fails (tests/e2e/test_sweep_queue_e2e.py covers failures).
SWEEP = [sys.executable, "-m", "src.sweep", "--seed-list", "42,43", "--poll", "2",
         "--status-every", "60"]


def _origin(root: Path, built: Path) -> tuple[Path, Path]:
    """The bare git remote and the DVC remote, holding a committed, pushed `dvc repro`."""
    bare, store = root / "origin.git", root / "dvc-store"
    sh(root, "git", "init", "-q", "--bare", "-b", "main", str(bare))
    repo = copy_project(built, root / "seed-repo")
    dvc(repo, "remote", "add", "-d", "shared", str(store))
    sh(repo, "git", "commit", "-q", "-am", "shared remote")
    dvc(repo, "push")
    sh(repo, "git", "remote", "add", "origin", str(bare))
    sh(repo, "git", "push", "-q", "origin", "main")
    return bare, repo


def _clone(bare: Path, path: Path) -> Path:
    sh(bare.parent, "git", "clone", "-q", str(bare), str(path))
    return path


def _sweep(repo: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*SWEEP, *args], cwd=repo, env=env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


# Generous: three sweeps share the CPU with the rest of the suite, and a busy machine can
# triple their time; a sweep that hangs still fails.
SWEEP_TIMEOUT_S = 1800


def _finish(process: subprocess.Popen[str]) -> str:
    out, err = process.communicate(timeout=SWEEP_TIMEOUT_S)
    assert process.returncode == 0, (out[-2000:], err[-4000:])
    return err


def _per_seed(repo: Path) -> dict:
    report = json.loads((repo / "reports/sweeps/sweep.json").read_text())
    assert len(report["groups"]) == 1
    return report["groups"][0]["per_seed"]


@pytest.fixture(scope="module")
def shared(built_project: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sweeps")
    bare, seed_repo = _origin(root, built_project)
    whole = _clone(bare, root / "whole")
    dvc(whole, "pull")
    fresh = dvc(whole, "repro")
    share2 = _clone(bare, root / "share2")
    share1 = _clone(bare, root / "share1")
    dvc(share1, "pull")
    running = [_sweep(whole, "--jobs", "2"),
               _sweep(share2, "--shard", "2/2", "--push", "origin"),
               _sweep(share1, "--shard", "1/2", "--push", "origin")]
    logs = [_finish(p) for p in running]
    report = _clone(bare, root / "report")
    logs.append(_finish(_sweep(report, "--report-only", "--pull", "origin")))
    return {"seed": seed_repo, "whole": whole, "share1": share1, "share2": share2,
            "report": report, "fresh": fresh, "logs": logs}  # type: ignore[dict-item]


def test_a_fresh_clone_pulls_instead_of_recomputing(shared) -> None:
    assert "Running stage" not in shared["fresh"].stdout, shared["fresh"].stdout
    assert dvc(shared["whole"], "status").stdout.strip().endswith("up to date.")


def test_shares_pushed_then_pulled_equal_one_machine(shared) -> None:
    whole, report = _per_seed(shared["whole"]), _per_seed(shared["report"])
    # Every model the pipeline has (the Keras strategies, and the peers once they are stages).
    models = [m for m in MODELS if (shared["seed"] / f"metrics/{m}.json").is_file()]
    assert set(STRATEGIES) <= set(models) and set(whole) == set(models)
    assert report == whole  # every model, every seed, every metric: bit for bit
    for model in models:
        assert report[model]["43"] != report[model]["42"]  # another seed, another split
        committed = json.loads((shared["seed"] / f"metrics/{model}.json").read_text())
        assert report[model]["42"] == committed  # the committed run is seed 42's
    markdown = (shared["report"] / "reports/sweeps/sweep.md").read_text()
    assert "| model | validation PR-AUC (AP) | test PR-AUC |" in markdown


def _experiment_file(repo: Path, seed: int, path: str) -> str:
    """`path` as the experiment of `seed` committed it (its ref under refs/exps)."""
    refs = sh(repo, "git", "for-each-ref", "--format=%(refname)", "refs/exps").stdout.split()
    [ref] = [r for r in refs if re.search(rf"-s{seed}-[0-9a-f]{{8}}$", r)]
    return sh(repo, "git", "show", f"{ref}:{path}").stdout


def test_two_machines_running_a_seed_get_identical_outputs(shared) -> None:
    """Seed 43 ran from scratch in `whole` and in `share2`: every stage of the pipeline twice,
    in two clones. Same seed, same bytes: dvc.lock (the hash of every output, models and
    plots included) and every metrics file."""
    lock = _experiment_file(shared["whole"], 43, "dvc.lock")
    assert lock == _experiment_file(shared["share2"], 43, "dvc.lock")
    assert lock != (shared["seed"] / "dvc.lock").read_text()  # seed 42's: another run
    for metrics in sorted((shared["seed"] / "metrics").glob("*.json")):
        name = f"metrics/{metrics.name}"
        assert _experiment_file(shared["whole"], 43, name) == \
            _experiment_file(shared["share2"], 43, name), name


def test_the_report_clone_computed_nothing(shared) -> None:
    report = shared["report"]
    data = json.loads((report / "reports/sweeps/sweep.json").read_text())
    assert data["ran"] == 0 and data["reused"] == 0 and data["failed"] == []
    # The command as a user would type it again, whatever started it (here `python -m`).
    assert data["command"].startswith("fraud sweep --seed-list 42,43 --poll 2")
    assert not (report / "data").exists() and not (report / "models").exists()
    assert not list((report / ".dvc").glob("cache/files/md5/*/*"))  # --pull is --no-cache
    names = dvc(report, "exp", "list", "--name-only").stdout.split()
    assert sorted(names) == sorted(data["experiments"])
    assert all(re.fullmatch(r"sweep-[0-9a-f]{8}-s4[23]-[0-9a-f]{8}", n) for n in names)


def test_shares_split_the_work_and_reuse_what_exists(shared) -> None:
    share1_log, share2_log = shared["logs"][2], shared["logs"][1]
    assert "0 experiment(s) reused, 1 to run" in share1_log
    assert "0 experiment(s) reused, 1 to run" in share2_log
    # The sweep leaves the workspace as it was: params, metrics, lock.
    assert sh(shared["whole"], "git", "status", "--porcelain", "--untracked-files=no") \
        .stdout == ""
    # Run again: everything is reused, nothing queued.
    again = _finish(_sweep(shared["whole"]))
    assert "2 experiment(s) reused, 0 to run" in again
