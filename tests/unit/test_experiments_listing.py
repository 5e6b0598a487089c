"""`fraud experiments`: one row per experiment within 100 columns, with the params it changed
from its baseline and the shipped model's figures. The table is checked on a real
`dvc exp show` of a tiny repository (no TensorFlow: a stage writes metrics/evaluate.json)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fraud.experiments.listing import MISSING, Row, changed_params, flat, format_rows
from tests.conftest import REPO

CHOICE_SCRIPT = """
import json, os, yaml
p = yaml.safe_load(open("params.yaml"))
os.makedirs("metrics", exist_ok=True)
prc = 0.5 + p["seed"] / 100
json.dump({"model": p["train"]["strategy"], "prc": prc, "prc_low": prc - 0.05,
           "prc_high": prc + 0.05, "recall": 0.7, "precision": 0.8, "cost": 12345.0},
          open("metrics/evaluate.json", "w"))
"""


def test_flat_and_changed_params() -> None:
    base = {"seed": 1, "train": {"strategy": "auto", "epochs": 3}, "grid": [1, 2]}
    assert flat(base) == {"seed": 1, "train.strategy": "auto", "train.epochs": 3,
                          "grid": [1, 2]}
    after = {"seed": 1, "train": {"strategy": "gbdt", "epochs": 3}, "grid": [1, 3], "new": 0}
    assert changed_params(base, after) == [("train.strategy", "gbdt"), ("grid", [1, 3]),
                                           ("new", 0)]
    assert changed_params(base, {"seed": 1}) == [("train.strategy", MISSING),
                                                 ("train.epochs", MISSING), ("grid", MISSING)]


def test_long_changes_wrap_within_the_width() -> None:
    changes = [(f"section.key_{i}", "x" * 12) for i in range(12)]
    table = format_rows([Row("a-very-long-experiment-name-indeed", "success", changes,
                             {"model": "oversample", "prc": 0.8})])
    lines = table.splitlines()
    assert all(len(line) <= 100 for line in lines), table
    assert lines[1].startswith("a-very-long-experiment-na… oversample  0.800 ")
    assert lines[2].startswith("  changed: section.key_0=xxxxxxxxxxxx, ")
    assert all(line.startswith(" " * 11) for line in lines[3:])
    assert sum(line.count("section.key_") for line in lines) == 12


def test_states_without_figures() -> None:
    table = format_rows([Row("waiting", "queued", [("seed", 3)], {}),
                         Row("broken", "failed", [("train.epochs", "abc")], {})])
    assert "waiting                    (queued)    —" in table
    assert "broken                     (failed)" in table
    assert "  changed: train.epochs=abc" in table


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t",
           "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com",
           "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
                          check=False)


@pytest.fixture(scope="module")
def tiny_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A committed baseline (strategy auto), two finished experiments, one queued, and the
    workspace left with an edit."""
    repo = tmp_path_factory.mktemp("experiments")
    dvc = (sys.executable, "-m", "dvc")
    (repo / "choose.py").write_text(CHOICE_SCRIPT)
    (repo / "params.yaml").write_text("seed: 42\ntrain:\n  strategy: auto\n  epochs: 3\n")
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"evaluate": {
        "cmd": f"{sys.executable} choose.py", "deps": ["choose.py"],
        "params": ["seed", "train"],
        "metrics": [{"metrics/evaluate.json": {"cache": False}}]}}}))
    for command in (("git", "init", "-q", "-b", "main"), (*dvc, "init", "-q"),
                    (*dvc, "repro", "-q"), ("git", "add", "-A"),
                    ("git", "commit", "-q", "-m", "baseline"),
                    (*dvc, "exp", "run", "--temp", "-q", "-n", "ship-gbdt",
                     "-S", "train.strategy=gbdt"),
                    (*dvc, "exp", "run", "--temp", "-q", "-n", "seed-and-epochs",
                     "-S", "seed=43", "-S", "train.epochs=30"),
                    (*dvc, "exp", "run", "--queue", "-q", "-n", "waiting", "-S", "seed=44")):
        done = _run(repo, *command)
        assert done.returncode == 0, (command, done.stderr)
    (repo / "params.yaml").write_text("seed: 42\ntrain:\n  strategy: weighted\n  epochs: 3\n")
    return repo


@pytest.mark.e2e  # real `dvc exp` commands: outside the fast loop
def test_the_table_of_a_real_repository(tiny_repo: Path) -> None:
    done = _run(tiny_repo, sys.executable, "-m", "fraud", "experiments")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert all(len(line) <= 100 for line in lines), done.stdout
    assert lines[0].split()[:2] == ["experiment", "model"]
    assert lines[1].startswith("workspace ")
    assert lines[2] == "  changed: train.strategy=weighted"
    assert lines[3].startswith("main (") and " auto " in lines[3]
    by_name = {line.split()[0]: index for index, line in enumerate(lines)}
    gbdt = lines[by_name["ship-gbdt"]]
    assert gbdt.split()[1:5] == ["gbdt", "0.920", "[0.870,", "0.970]"]
    assert lines[by_name["ship-gbdt"] + 1] == "  changed: train.strategy=gbdt"
    assert lines[by_name["seed-and-epochs"] + 1] == "  changed: seed=43, train.epochs=30"
    assert "(queued)" in lines[by_name["waiting"]]
    assert lines[by_name["waiting"] + 1] == "  changed: seed=44"


def test_outside_a_repository_is_one_line(tmp_path: Path) -> None:
    done = _run(tmp_path, sys.executable, "-m", "fraud", "experiments")
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("error: dvc exp show failed: ")
    assert len(done.stderr.splitlines()) == 1
