"""Every stage name a message (src/), the README, docs/ or CONTRIBUTING.md mentions is a stage
of dvc.yaml.

A user copies them into `dvc repro NAME`: `run the train_oversample stage` sent people to a
stage that does not exist (it is train_resampled). Names are read from dvc.yaml, foreach
stages as `group@key` and `group`.
"""

from __future__ import annotations

import ast
import itertools
import re
from pathlib import Path

import pytest

from tests.project_files import stage_names

ROOT = Path(__file__).resolve().parents[2]
NAME = r"[a-z][a-z0-9_]*(?:@[a-z0-9_-]+)?"
# Words that stand where a stage name would, but are not one ("the next stage").
NOT_NAMES = {"a", "an", "any", "each", "every", "first", "last", "next", "no", "one", "other",
             "previous", "same", "that", "the", "this", "which", "whole", "its", "their"}
PHRASES = [
    re.compile(rf"\b(?:the|run|rerun)\s+`?({NAME})`?\s+stage\b"),  # run the scale stage
    re.compile(rf"\bstages?\s+(?:from\s+|named\s+)?`({NAME})`"),    # stage from `split` on
    re.compile(rf"`({NAME})`\s+stage\b"),                           # the `export` stage
    re.compile(rf"\bdvc\s+repro(?:\s+-{{1,2}}[\w-]+)*\s+`?({NAME})`?"),  # dvc repro evaluate
]
DOCSTRING_HEAD = re.compile(rf"^Stages?\s+({NAME}(?:\s*/\s*{NAME})*)\s*:")
ARROWED = [re.compile(rf"({NAME})\s*[→┐┘├]"), re.compile(rf"→\s*({NAME})")]


def dvc_stage_names(dvc_yaml: Path = ROOT / "dvc.yaml") -> set[str]:
    """The stages, and the names of foreach groups (`evaluate_model` runs them all)."""
    names = set(stage_names(dvc_yaml))
    return names | {name.split("@")[0] for name in names}


def mentions_in_text(text: str) -> set[str]:
    found = {match for pattern in PHRASES for match in pattern.findall(text)}
    return found - NOT_NAMES


def _stage_hint_positions(trees: list[ast.Module]) -> dict[str, int]:
    """Functions with a parameter that takes a stage name (`stage_hint`, `trained_by`)."""
    positions = {}
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef):
                names = [arg.arg for arg in node.args.args]
                for index, arg in enumerate(names):
                    if arg in ("stage_hint", "trained_by", "stage"):
                        positions[node.name] = index
    return positions


def mentions_in_source(files: list[Path], root: Path = ROOT) -> dict[str, set[str]]:
    """Stage names in string constants, docstring heads and stage-hint arguments, by file."""
    trees = {path: ast.parse(path.read_text(), str(path)) for path in files}
    hints = _stage_hint_positions(list(trees.values()))
    found: dict[str, set[str]] = {}
    for path, tree in trees.items():
        names: set[str] = set()
        doc = ast.get_docstring(tree) or ""
        if head := DOCSTRING_HEAD.match(doc):
            names.update(part.strip() for part in head.group(1).split("/"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                names |= mentions_in_text(node.value)
            elif isinstance(node, ast.Call):
                func = node.func.attr if isinstance(node.func, ast.Attribute) else \
                    getattr(node.func, "id", None)
                index = hints.get(func)
                if index is not None and index < len(node.args):
                    arg = node.args[index]
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                        names.add(arg.value)
        found[str(path.relative_to(root))] = names
    return found


def built_stage_names(files: list[Path], root: Path = ROOT) -> list[str]:
    """f-strings that make a stage name from a model name (f"train_{name}"): a guess that is
    wrong for oversample, whose stage is train_resampled."""
    hits = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.JoinedStr):
                parts = node.values
                for part, after in itertools.pairwise(parts):
                    if (isinstance(part, ast.Constant) and isinstance(after, ast.FormattedValue)
                            and re.search(r"\btrain_$", str(part.value))):
                        hits.append(f"{path.relative_to(root)}:{node.lineno}")
    return hits


def mentions_in_readme(text: str) -> set[str]:
    """The stage table's first column, the arrows of the pipeline diagram, and phrases."""
    names = mentions_in_text(text)
    header_seen = False
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not line.lstrip().startswith("|"):
            header_seen = False
            continue
        if cells[0].lower() == "stage":
            header_seen = True
        elif header_seen and not set(cells[0]) <= set("-: "):
            names.update(part.strip(" `") for part in re.split(r"[/,]", cells[0]))
    for block in re.findall(r"```[^\n]*\n(.*?)```", text, flags=re.DOTALL):
        if "→" in block and "$ " not in block:  # a diagram, not a shell session
            names.update(match for pattern in ARROWED for match in pattern.findall(block))
    return names - {""}


def python_files() -> list[Path]:
    return sorted((ROOT / "src").rglob("*.py"))


def test_stage_names_in_messages_exist() -> None:
    stages = dvc_stage_names()
    unknown = {path: sorted(names - stages)
               for path, names in mentions_in_source(python_files()).items() if names - stages}
    assert not unknown, f"stage names not in dvc.yaml ({sorted(stages)}): {unknown}"


def test_no_message_builds_a_train_stage_name() -> None:
    assert not built_stage_names(python_files()), "use params.TRAIN_STAGES"


def test_stage_names_in_readme_exist() -> None:
    stages = dvc_stage_names()
    mentioned = mentions_in_readme((ROOT / "README.md").read_text())
    assert mentioned, "found no stage name in README.md: the test no longer reads it"
    assert mentioned <= stages, sorted(mentioned - stages)


@pytest.mark.parametrize("pattern", ["docs/*.md", "CONTRIBUTING.md"])
def test_stage_names_in_docs_exist(pattern: str) -> None:
    stages = dvc_stage_names()
    files = sorted(ROOT.glob(pattern))
    assert files, f"no {pattern}: the test no longer reads the docs"
    unknown = {str(path.relative_to(ROOT)): sorted(names - stages) for path in files
               if (names := mentions_in_readme(path.read_text(encoding="utf-8"))) - stages}
    assert not unknown, f"stage names not in dvc.yaml ({sorted(stages)}): {unknown}"


def test_docs_name_stages() -> None:
    """The pipeline page's table and diagram are read: it names every stage group."""
    mentioned = mentions_in_readme((ROOT / "docs/pipeline.md").read_text(encoding="utf-8"))
    assert {name.split("@")[0] for name in dvc_stage_names()} <= mentioned


def test_train_stages_map_names_real_stages() -> None:
    from fraud.core.models import MODELS, TRAIN_STAGES

    assert set(TRAIN_STAGES) == set(MODELS)
    assert set(TRAIN_STAGES.values()) <= dvc_stage_names()


# The checks themselves, on text made to fail them.

def test_the_checks_find_wrong_names(tmp_path: Path) -> None:
    source = tmp_path / "stage.py"
    source.write_text('"""Stage train_oversample: x."""\n'
                      'def load(path, stage_hint):\n    pass\n'
                      'load("m.keras", "evaluation")\n'
                      'name = "x"\n'
                      'message = f"run the train_{name} stage"\n'
                      'other = "run the scal stage first; every stage from `spilt` on"\n')
    assert mentions_in_source([source], tmp_path)["stage.py"] == {
        "train_oversample", "evaluation", "scal", "spilt"}
    assert built_stage_names([source], tmp_path) == ["stage.py:6"]


@pytest.mark.parametrize(("text", "expected"), [
    ("| stage | writes |\n| --- | --- |\n| train_a / train_b | x |\n| `export` | y |\n",
     {"train_a", "train_b", "export"}),
    ("```\ndownload → clean → train_x  ┐\n            → train_y ┘ (peers, no TF)\n```\n",
     {"download", "clean", "train_x", "train_y"}),
    ("Run `dvc repro evaluate_model@gbdt` or `dvc repro -f export`; the `predict` stage.",
     {"evaluate_model@gbdt", "export", "predict"}),
])
def test_readme_mentions_are_found(text: str, expected: set[str]) -> None:
    assert mentions_in_readme(text) == expected


def test_lock_file_holds_only_current_stages() -> None:
    """DVC keeps a dvc.lock entry for a stage that left dvc.yaml (renamed, merged): dead
    weight every DVC command parses again and again. The committed lock has none."""
    import yaml

    locked = set(yaml.safe_load((ROOT / "dvc.lock").read_text(encoding="utf-8"))["stages"])
    current = set(stage_names(ROOT / "dvc.yaml"))
    assert locked <= current, f"stale entries: {sorted(locked - current)}"
