"""SIGKILL a stage at several points; the next `dvc repro` must complete, reproduce the same
outputs (dvc.lock and metrics byte for byte) and leave no stray file.

One small repository (the e2e suite's synthetic project). A stage kills itself with SIGKILL
at an exact point, as an OOM killer or a power cut would: a `sitecustomize` on PYTHONPATH
wraps os.replace / tempfile.mkstemp in processes running `python -m src.stages.*` and counts
the stage's own temporaries (files.py's TEMP_PREFIX):
- `create:N`: killed as the stage makes its Nth output file (the earlier ones written);
- `publish:N`: killed as it renames its Nth output into place (the earlier ones published,
  the rest still temporaries).

DVC restores a killed stage's outputs from its cache when dvc.lock (or the run cache) holds
them: then the stage does not run again, and its temporaries (which git and DVC ignore) wait
for its next run. The main test first drops the stage's outputs from the cache, as for a
stage killed on its first run with new data or params (an OOM kill): the next `dvc repro`
must run it, sweep, and publish the same bytes. The last test keeps the cache.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from fraud.core.files import TEMP_PREFIX
from tests.synthetic_project import copy_project, dvc, env, sh

KILL_HOOK = f'''
import os, signal, sys, tempfile

_KIND, _, _AT = os.environ.get("FRAUD_TEST_KILL", ":").partition(":")
_STAGE = any(arg.startswith("src.stages.") for arg in getattr(sys, "orig_argv", []))
_PREFIX = {TEMP_PREFIX!r}
_count = 0


def _tick(kind):
    global _count
    if kind == _KIND:
        _count += 1
        if _count == int(_AT):
            os.kill(os.getpid(), signal.SIGKILL)


if _STAGE and _KIND:
    _replace, _mkstemp = os.replace, tempfile.mkstemp

    def replace(src, dst, *args, **kwargs):
        ours = os.path.basename(os.fspath(src)).startswith(_PREFIX)
        if ours and not os.path.basename(os.fspath(dst)).startswith(_PREFIX):
            _tick("publish")
        return _replace(src, dst, *args, **kwargs)

    def mkstemp(*args, **kwargs):
        if str(kwargs.get("prefix", "")).startswith(_PREFIX):
            _tick("create")
        return _mkstemp(*args, **kwargs)

    os.replace, tempfile.mkstemp = replace, mkstemp
'''

# (stage, point): a kill before any output exists is no test of leftovers, so each point
# comes after the stage has written at least one file.
KILL_POINTS = [
    ("download", "publish:1"),        # the CSV written, not yet renamed
    ("clean", "publish:1"),           # its one output, the table, written, not yet renamed
    ("split", "publish:2"),           # train.parquet published; val and test temporaries
    ("scale", "create:5"),            # four arrays written, the rest not
    ("train_baseline", "publish:2"),  # the model published; history and metrics not
    ("evaluate", "publish:1"),        # everything written, nothing published
]


def stray_files(repo: Path) -> list[str]:
    return sorted(str(p.relative_to(repo)) for p in repo.rglob(f"{TEMP_PREFIX}*")
                  if ".dvc" not in p.relative_to(repo).parts)


def outputs_snapshot(repo: Path) -> dict[str, bytes]:
    """dvc.lock (the hash of every output) and the files git tracks beside it."""
    files = {"dvc.lock": (repo / "dvc.lock").read_bytes()}
    for folder in ("metrics", "plots"):
        for path in sorted((repo / folder).rglob("*")):
            if path.is_file() and path.suffix in (".json", ".csv") \
                    and not path.name.startswith(TEMP_PREFIX):
                files[str(path.relative_to(repo))] = path.read_bytes()
    return files


@dataclass
class Project:
    repo: Path
    hook: Path                    # the folder of the kill hook's sitecustomize.py
    reference: dict[str, bytes]   # outputs_snapshot after the first, uninterrupted run


@pytest.fixture(scope="module")
def project(built_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Project:
    repo = copy_project(built_project, tmp_path_factory.mktemp("killed") / "repo")
    hook = tmp_path_factory.mktemp("hook")
    (hook / "sitecustomize.py").write_text(KILL_HOOK, encoding="utf-8")
    return Project(repo=repo, hook=hook, reference=outputs_snapshot(repo))


def forget_outputs(repo: Path, stage: str) -> None:
    """Removes `stage`'s outputs from DVC's cache and the run cache: DVC cannot restore them,
    so the next `dvc repro` has to run the stage."""
    lock = yaml.safe_load((repo / "dvc.lock").read_text(encoding="utf-8"))
    for out in lock["stages"][stage]["outs"]:
        md5 = out["md5"]
        (repo / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]).unlink(missing_ok=True)
    shutil.rmtree(repo / ".dvc" / "cache" / "runs", ignore_errors=True)


def repro_killed(project: Project, stage: str, point: str) -> subprocess.CompletedProcess[str]:
    run_env = {**env(), "FRAUD_TEST_KILL": point,
               "PYTHONPATH": os.pathsep.join([str(project.hook),
                                              os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "dvc", "repro", "--force", "--single-item",
                           stage], cwd=project.repo, env=run_env, capture_output=True,
                          text=True, timeout=600, check=False)


@pytest.mark.parametrize(("stage", "point"), KILL_POINTS)
def test_repro_recovers_from_a_killed_stage(project: Project, stage: str, point: str) -> None:
    repo = project.repo
    forget_outputs(repo, stage)
    killed = repro_killed(project, stage, point)
    assert killed.returncode != 0, f"{stage} was not killed at {point}:\n{killed.stderr}"
    left = stray_files(repo)
    assert left, f"the kill at {stage} {point} left no temporary: not a test of leftovers"
    status = sh(repo, "git", "status", "--porcelain", "--untracked-files=all").stdout
    assert TEMP_PREFIX not in status, status  # temporaries are invisible to git

    recovered = dvc(repo, "repro")  # no hook: what a user runs next
    assert f"Running stage '{stage}'" in recovered.stdout, recovered.stdout
    assert stray_files(repo) == [], f"after {stage} {point}"
    assert outputs_snapshot(repo) == project.reference
    assert dvc(repo, "status").stdout.strip().endswith("up to date.")
    assert sh(repo, "git", "status", "--porcelain", "--untracked-files=all").stdout == ""


def test_temporaries_go_when_the_run_cache_restores(project: Project) -> None:
    """With its run cache, DVC restores the killed stage without running it. Its folder out
    (data/split) is replaced whole, temporaries and all; a temporary beside a file out
    (metrics/data.json) stays, unseen by git and by `dvc status`, until the next run of any
    stage writing into that folder."""
    repo = project.repo
    killed = repro_killed(project, "split", "publish:1")
    assert killed.returncode != 0, killed.stderr
    left = stray_files(repo)
    assert any(name.startswith("data/split/") for name in left), left
    assert all(name.startswith(("data/split/", "metrics/.fraud-tmp.data.json"))
               for name in left), left
    restored = dvc(repo, "repro")
    assert "Running stage 'split'" not in restored.stdout, restored.stdout
    assert outputs_snapshot(repo) == project.reference
    assert dvc(repo, "status").stdout.strip().endswith("up to date.")
    assert sh(repo, "git", "status", "--porcelain", "--untracked-files=all").stdout == ""
    assert [name for name in stray_files(repo) if not name.startswith("metrics/")] == []
    dvc(repo, "repro", "--force", "--single-item", "init_bias")  # another stage's metrics
    assert stray_files(repo) == []
    assert outputs_snapshot(repo) == project.reference


def test_a_killed_export_is_swept_though_its_run_cache_could_restore_it(project: Project
                                                                        ) -> None:
    """export writes into models/, where no other stage that reruns writes: restored from
    the run cache, it would never run to sweep its temporaries. Its outs are `persist`, which
    keeps DVC from restoring it, so the next `dvc repro` runs it and sweeps."""
    repo = project.repo
    killed = repro_killed(project, "export", "publish:1")
    assert killed.returncode != 0, killed.stderr
    assert any(name.startswith("models/") for name in stray_files(repo)), stray_files(repo)
    recovered = dvc(repo, "repro")
    assert "Running stage 'export'" in recovered.stdout, recovered.stdout
    assert stray_files(repo) == []
    assert outputs_snapshot(repo) == project.reference
    assert dvc(repo, "status").stdout.strip().endswith("up to date.")


# What DVC 3.67 prints for every command once a Ctrl-C has emptied dvc.lock (DVC writes the
# file in place after each stage); docs/troubleshooting.md quotes it with the recovery.
EMPTY_LOCK_ERROR = "'./dvc.lock' validation failed"
LOCK_RECOVERY = "git checkout dvc.lock && dvc repro"


def test_an_emptied_lock_and_its_documented_recovery(project: Project) -> None:
    repo = project.repo
    (repo / "dvc.lock").write_text("", encoding="utf-8")  # what the interrupted write leaves
    broken = subprocess.run([sys.executable, "-m", "dvc", "exp", "run", "--dry"], cwd=repo,
                            env=env(), capture_output=True, text=True, timeout=300,
                            check=False)
    assert broken.returncode != 0 and EMPTY_LOCK_ERROR in broken.stderr + broken.stdout
    guide = (Path(__file__).resolve().parents[2] / "docs" / "troubleshooting.md").read_text()
    assert EMPTY_LOCK_ERROR in guide and LOCK_RECOVERY in guide
    sh(repo, "git", "checkout", "dvc.lock")
    recovered = dvc(repo, "repro")
    assert "Running stage" not in recovered.stdout, recovered.stdout  # nothing recomputed
    assert outputs_snapshot(repo) == project.reference
