"""dvc.yaml's code deps are each stage's real imports, at the level of the package.

A module that a stage's command imports, directly or through other modules under src/, can
change what the stage writes; if it is not a dep, editing it leaves `dvc repro` saying "up to
date" over stale outputs. So each stage's import closure (read with `ast`, lazy imports in
functions included) must be covered by its deps, and each code dep must be imported (a stale
path would rerun the stage for nothing). The deps name sub-packages, not files: a stage
depends on `src/fraud/<sub-package>` when its closure reaches any module there (core/ holds
what every stage shares: the declaration, params, files); `package_deps` is that list, and
dvc.yaml must hold exactly it (fewer lines to keep by hand, a smaller dvc.lock for DVC to
read on every command).
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src"
# Modules that cannot change an output, so that editing them reruns nothing:
NOT_OUTPUT_CHANGING = {
    "src/fraud/errors.py",  # the exception type and message helpers: a failure, not an output
    "src/fraud/core/cli.py",     # argument parsing, logging and the one-line error of a stage run
}
# Package __init__ files are not deps either: test_package_inits_hold_no_code keeps them empty.


def module_file(dotted: str) -> Path | None:
    """`fraud.x` -> src/fraud/x.py, `src.stages.x` -> src/stages/x.py (or the package's
    __init__.py), if it is in src/."""
    parts = dotted.split(".")
    base = (SRC if parts[0] == "fraud" else REPO).joinpath(*parts)
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file() and path.is_relative_to(SRC):
            return path
    return None


def _dotted(path: Path) -> str:
    root = SRC if path.is_relative_to(SRC / "fraud") else REPO
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_files(path: Path) -> set[Path]:
    """The files under src/ that `path` imports: modules, and data files it names."""
    package = _dotted(path) if path.name == "__init__.py" else _dotted(path).rpartition(".")[0]
    found: set[Path] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            # `from package import module` imports the module; `from module import name`, it
            names = [f"{base}.{alias.name}" if module_file(f"{base}.{alias.name}") else base
                     for alias in node.names]
        else:
            continue
        found |= {file for name in names if (file := module_file(name))}
    text = path.read_text(encoding="utf-8")
    found |= {data for data in SRC.rglob("*") if data.is_file() and data.suffix != ".py"
              and "__pycache__" not in data.parts and data.name in text}
    return found


KINDS = SRC / "fraud" / "kinds"


def discovered(path: Path) -> set[Path]:
    """The modules kinds/registry.py imports by looking (pkgutil), which `ast` cannot see."""
    if path != KINDS / "registry.py":
        return set()
    return {file for file in KINDS.glob("*.py") if not file.name.startswith("_")}


def import_closure(module: str) -> set[Path]:
    """Every file under src/ that running `python -m module` may import or read."""
    start = module_file(module)
    assert start is not None, f"{module}: not a module under src/"
    seen, todo = {start}, [start]
    while todo:
        current = todo.pop()
        for file in imported_files(current) | discovered(current):
            if file not in seen:
                seen.add(file)
                if file.suffix == ".py":
                    todo.append(file)
    return seen


def stages(dvc_yaml: Path = REPO / "dvc.yaml") -> dict[str, dict[str, Any]]:
    """dvc.yaml's stages as YAML reads them (anchors resolved), a foreach stage by its `do`."""
    raw = yaml.safe_load(dvc_yaml.read_text(encoding="utf-8"))["stages"]
    return {name: stage.get("do", stage) for name, stage in raw.items()}


def stage_module(stage: dict[str, Any]) -> str:
    words = stage["cmd"].split()
    return words[words.index("-m") + 1]


def code_deps(stage: dict[str, Any]) -> set[str]:
    return {str(dep).rstrip("/") for dep in stage.get("deps", []) if str(dep).startswith("src/")}


def missing_deps(stage: dict[str, Any]) -> list[str]:
    """What the stage imports or reads under src/ that no dep covers."""
    deps = code_deps(stage)
    needed = {str(file.relative_to(REPO)) for file in import_closure(stage_module(stage))
              if file.name != "__init__.py"} - NOT_OUTPUT_CHANGING
    return sorted(path for path in needed
                  if not any(path == dep or path.startswith(dep + "/") for dep in deps))


def unused_deps(stage: dict[str, Any]) -> list[str]:
    """Code deps that the stage neither imports nor reads: stale paths."""
    used = {str(file.relative_to(REPO)) for file in import_closure(stage_module(stage))}
    return sorted(dep for dep in code_deps(stage)
                  if not any(path == dep or path.startswith(dep + "/") for path in used))


def package_deps(stage: dict[str, Any]) -> list[str]:
    """The code deps a stage must declare: its script, the sub-packages its import closure
    reaches (folders), and the shared modules at the top of the library it imports."""
    deps: set[str] = set()
    for file in import_closure(stage_module(stage)):
        path = file.relative_to(REPO)
        if str(path) in NOT_OUTPUT_CHANGING or file.name == "__init__.py":
            continue
        inside = path.relative_to("src/fraud").parts if path.is_relative_to("src/fraud") else ()
        deps.add(f"src/fraud/{inside[0]}" if len(inside) > 1 else str(path))
    return sorted(deps)


STAGES = stages()


@pytest.mark.parametrize("name", STAGES)
def test_every_imported_module_is_a_dep(name: str) -> None:
    assert missing_deps(STAGES[name]) == [], f"{name}: add these to its deps in dvc.yaml"


@pytest.mark.parametrize("name", STAGES)
def test_every_code_dep_is_imported(name: str) -> None:
    assert unused_deps(STAGES[name]) == [], f"{name}: not imported; remove from its deps"


@pytest.mark.parametrize("name", STAGES)
def test_code_deps_are_exactly_the_packages_reached(name: str) -> None:
    """Both ways: no file of a sub-package listed on its own, no folder the stage never
    reaches, nothing reached left out."""
    assert sorted(code_deps(STAGES[name])) == package_deps(STAGES[name]), \
        f"{name}: its code deps in dvc.yaml should be exactly {package_deps(STAGES[name])}"


def test_a_file_dep_inside_a_sub_package_is_refused() -> None:
    """The check itself: a file dep where its folder belongs is reported."""
    stage = dict(STAGES["clean"])
    stage["deps"] = [("src/fraud/data/prepare.py" if dep == "src/fraud/data" else dep)
                     for dep in stage["deps"]]
    assert "src/fraud/data" not in code_deps(stage)
    assert sorted(code_deps(stage)) != package_deps(stage)


def test_package_inits_hold_no_code() -> None:
    """So that leaving them out of the deps is safe. src/__init__.py aside: it only puts
    this checkout's library first on the import path (test_entry_points_use_their_checkout)."""
    for init in set(SRC.rglob("__init__.py")) - {SRC / "__init__.py"}:
        body = ast.parse(init.read_text(encoding="utf-8")).body
        assert all(isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
                   for node in body), f"{init.relative_to(REPO)}: keep package inits empty"


def test_a_module_missing_from_the_deps_is_found(tmp_path: Path) -> None:
    """The check itself: drop one real dep of a stage and it is reported."""
    stage = dict(STAGES["evaluate"])
    dropped = "src/fraud/evaluation/colors.py"
    assert any(dropped == dep or dropped.startswith(dep + "/") for dep in code_deps(stage))
    stage["deps"] = [dep for dep in stage["deps"] if dep != dropped]
    if code_deps(stage) == code_deps(STAGES["evaluate"]):  # covered by a folder dep
        stage["deps"] = [dep for dep in stage["deps"] if not dropped.startswith(dep + "/")]
    assert dropped in missing_deps(stage)


# --- the library's import graph: no upward arrows, no cycles ---------------------------------

LIBRARY = SRC / "fraud"


def _library_graph() -> dict[Path, set[Path]]:
    return {module: {file for file in imported_files(module)
                     if file.suffix == ".py" and file.name != "__init__.py"}
            for module in LIBRARY.rglob("*.py")
            if module.name != "__main__.py"}  # `python -m fraud`: the top, like commands/


def _has_cycle(graph: dict[Any, set[Any]]) -> list[Any]:
    """A path that closes a cycle, or [] (depth-first, three colours)."""
    state: dict[Any, int] = {}

    def visit(node: Any, path: list[Any]) -> list[Any]:
        state[node] = 1
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                return [*path, node, nxt]
            if nxt not in state and (found := visit(nxt, [*path, node])):
                return found
        state[node] = 2
        return []

    return next((found for node in graph if node not in state
                 if (found := visit(node, []))), [])


def _package(module: Path) -> str:
    """core/ (the declaration, params, files, every stage's plumbing) and kinds/ (the
    registry of model kinds, which params.py reads) count as shared, with errors.py: the
    bottom layer, which imports no other sub-package."""
    parts = module.relative_to(LIBRARY).parts
    return parts[0] if len(parts) > 1 and parts[0] not in ("core", "kinds") else "shared"


def test_the_library_imports_nothing_above_it() -> None:
    """The library never imports the stages, the aliases, bench/ or tests/."""
    for module in LIBRARY.rglob("*.py"):
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            for name in names:
                assert name.split(".")[0] not in ("bench", "tests", "tools", "src"), \
                    f"{module}: imports {name}"


def test_no_import_cycles_between_modules_or_sub_packages() -> None:
    graph = _library_graph()
    assert _has_cycle(graph) == []
    packages: dict[str, set[str]] = {}
    for module, imported in graph.items():
        packages.setdefault(_package(module), set()).update(
            _package(file) for file in imported if _package(file) != _package(module))
    assert _has_cycle(packages) == [], packages
    assert packages.get("shared", set()) == set(), "shared modules import no sub-package"
