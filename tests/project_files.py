"""The project around the library: what dvc.yaml declares (read without DVC), and the
plumbing the benchmark and the tests share to copy the project and read what DVC ran."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import yaml

DVC_YAML = "dvc.yaml"
ROOT = Path(__file__).resolve().parents[1]  # the repository
# What `dvc repro` needs (copy_project_files; the benchmark and tests/synthetic_project.py).
PROJECT_FILES = ["src", "dvc.yaml", "params.yaml", ".dvc/config", ".dvc/.gitignore", ".dvc/plots",
                 ".dvcignore",
                 ".gitignore", "plots/template"]


def stage_names(dvc_yaml: str | Path = DVC_YAML) -> list[str]:
    """Every stage that runs, in dvc.yaml's order; each item of a stage with `foreach` as
    `name@key`, the way DVC names (and prints) each of its items."""
    stages = yaml.safe_load(Path(dvc_yaml).read_text(encoding="utf-8"))["stages"]
    names: list[str] = []
    for name, stage in stages.items():
        items = stage.get("foreach") if isinstance(stage, dict) else None
        if isinstance(items, dict):
            names += [f"{name}@{key}" for key in items]
        elif isinstance(items, list):
            names += [f"{name}@{item if isinstance(item, str) else i}"
                      for i, item in enumerate(items)]
        else:
            names.append(name)
    return names


def scaled_file(root: Path, name: str) -> Path:
    """One of the scale stage's files (`train_features.npy`, `scaler.json`, ...) where dvc.yaml's
    vars put it: the test arrays in `test_dir`, the rest (what training reads) in `fit_dir`."""
    variables = yaml.safe_load((root / DVC_YAML).read_text(encoding="utf-8"))["vars"][0]
    return root / variables["test_dir" if name.startswith("test_") else "fit_dir"] / name


def copy_project_files(dest: Path, root: Path = ROOT) -> None:
    """The pipeline's files (PROJECT_FILES) from `root` into `dest`, without bytecode."""
    for name in PROJECT_FILES:
        src, dst = root / name, dest / name
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif src.is_file():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dst)


def ran_stages(stdout: str) -> list[str]:
    """The stages a `dvc repro` / `dvc exp run` ran, in order, from its output."""
    return re.findall(r"Running stage '([\w@-]+)'", stdout)


def set_dotted(raw: dict[str, Any], dotted: str, value: Any) -> None:
    """`raw[section][key] = value` for `section.key` (as `dvc exp run -S` names a param)."""
    *sections, key = dotted.split(".")
    node = raw
    for name in sections:
        node = node[name]
    node[key] = value
