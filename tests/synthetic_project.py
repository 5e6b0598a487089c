"""The end-to-end tests' project: the pipeline's files in a temporary git repository, with
small synthetic data, and the commands run in it (the real `git` and `dvc`, no network).

A full `dvc repro` of it costs about a minute (17 stage processes, most of it imports and
tracing, not data), so it is built once per test session and copied: `built_project` returns
the finished repository (outputs committed, DVC cache inside); `copy_project` gives a test
module a private copy to change. Under pytest-xdist the workers share one build through a
lock file in their common temporary folder.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from fraud.data.download import MIRROR_ENV
from tests.project_files import copy_project_files

ROOT = Path(__file__).resolve().parents[1]
BUILD_LOG = "repro.log"  # beside the built repository: the first `dvc repro`'s stdout


def env() -> dict[str, str]:
    result = dict(os.environ)
    result.update({"DVC_NO_ANALYTICS": "1", "TF_CPP_MIN_LOG_LEVEL": "2",
                   "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.com",
                   "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.com"})
    result.pop(MIRROR_ENV, None)
    # `python` in dvc.yaml's commands must be this interpreter.
    result["PATH"] = str(Path(sys.executable).parent) + os.pathsep + result.get("PATH", "")
    return result


def sh(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, cwd=cwd, env=env(), capture_output=True, text=True)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({done.returncode}):\n"
                             f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def dvc(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return sh(cwd, sys.executable, "-m", "dvc", *args)


def fraud_predict(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`fraud predict models/fraud_detector.onnx ARGS...` in `repo`, its result kept (the
    caller checks the exit code: some tests expect a failure)."""
    return subprocess.run([sys.executable, "-m", "fraud", "predict",
                           "models/fraud_detector.onnx", *args],
                          cwd=repo, env=env(), capture_output=True, text=True)


def small_params(path: Path) -> None:
    """Tiny synthetic data and few epochs: the whole pipeline in about a minute."""
    params = yaml.safe_load(path.read_text())
    params["download"]["url"] = "synthetic"
    params["download"]["synthetic_rows"] = 12000
    params["download"]["synthetic_fraud_rate"] = 0.01
    params["train"].update(epochs=4, batch_size=512, patience=2)
    params["init_bias"]["compare_epochs"] = 2
    params["evaluate"]["curve_points"] = 200
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def new_project(repo: Path) -> Path:
    """Copies the project's files into `repo` with small params, as one git commit."""
    copy_project_files(repo)
    small_params(repo / "params.yaml")
    sh(repo, "git", "init", "-q", "-b", "main")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-q", "-m", "project")
    return repo


def project_with_params(repo: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    """`new_project` in `repo` (created) with params.yaml changed by `edit` in the
    workspace, after one `dvc repro`: a project on another table or source."""
    repo.mkdir(parents=True, exist_ok=True)
    new_project(repo)
    edit_params(repo, edit)
    dvc(repo, "repro")
    return repo


def edit_params(repo: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    """params.yaml in `repo` changed by `edit`, in the workspace."""
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())
    edit(params)
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def _build(repo: Path) -> None:
    """`new_project`, one `dvc repro` (its output kept: tests check what ran) and a commit."""
    shutil.rmtree(repo, ignore_errors=True)  # a build cut short by an earlier failure
    repo.mkdir(parents=True)
    new_project(repo)
    done = dvc(repo, "repro")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-q", "-m", "first run")
    (repo.parent / BUILD_LOG).write_text(done.stdout, encoding="utf-8")


def built_project(shared_dir: Path) -> Path:
    """The project after its first `dvc repro`, built in `shared_dir` by whichever process
    asks first; the others wait for it. Treat it as read-only: `copy_project` it."""
    repo = shared_dir / "built-project" / "repo"
    repo.parent.mkdir(parents=True, exist_ok=True)
    with open(repo.parent / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not (repo.parent / BUILD_LOG).is_file():
            _build(repo)
    return repo


def copy_project(built: Path, dest: Path) -> Path:
    """A private copy of the built repository (git history, outputs and DVC cache, not
    DVC's machine-local state in .dvc/tmp): `dvc status` is clean in it."""
    shutil.copytree(built, dest, symlinks=True,
                    ignore=lambda folder, _: ["tmp"] if Path(folder).name == ".dvc" else [])
    return dest
