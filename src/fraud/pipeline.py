"""What dvc.yaml declares, read without DVC: the stage names as `dvc repro` prints them."""

from __future__ import annotations

from pathlib import Path

import yaml

DVC_YAML = "dvc.yaml"


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
