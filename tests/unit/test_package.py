"""The library as a package: `fraud` installs from the checkout with one command holding the
user-facing subcommands; entry points share library code and never import each other; every
process DVC starts runs the library of its own checkout."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from fraud.commands.main import COMMANDS, usage
from tests.conftest import REPO, stage_env

SRC = REPO / "src"
COMMANDS_DIR = SRC / "fraud" / "commands"


def run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), cwd=cwd, env=stage_env(), capture_output=True,
                          text=True, timeout=120, check=False)


def test_fraud_help_lists_every_subcommand() -> None:
    """The console script pip installed beside this interpreter (PATH set-ups differ)."""
    script = Path(sysconfig.get_path("scripts")) / "fraud"
    fraud = str(script) if script.is_file() else shutil.which("fraud")
    assert fraud is not None, "no `fraud` command: pip install -r requirements.txt"
    done = run(fraud, "--help")
    assert done.returncode == 0 and done.stdout == usage()
    for name in COMMANDS:
        assert f"\n  {name} " in done.stdout
    assert set(COMMANDS) == {p.stem for p in COMMANDS_DIR.glob("*.py")} - {"__init__", "main"}


@pytest.mark.parametrize("name", list(COMMANDS))
def test_each_subcommand_has_its_help(name: str) -> None:
    done = run(sys.executable, "-m", "fraud", name, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: fraud {name} ")


def test_an_unknown_subcommand_is_one_line() -> None:
    done = run(sys.executable, "-m", "fraud", "predcit")
    assert done.returncode == 2
    assert done.stderr == ("error: fraud: unknown command 'predcit'; one of "
                           f"{', '.join(COMMANDS)} (fraud --help)\n")
    assert run(sys.executable, "-m", "fraud").returncode == 2  # no command: the usage


@pytest.mark.parametrize("name", ["predict", "summary"])
def test_the_python_m_aliases_run_the_same_command(name: str) -> None:
    assert run(sys.executable, "-m", f"src.{name}", "--help").stdout == \
        run(sys.executable, "-m", "fraud", name, "--help").stdout


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
    return found


def test_entry_points_never_import_each_other() -> None:
    """Shared code lives in the library (fraud/serving/card.py for the card both read)."""
    for path in COMMANDS_DIR.glob("*.py"):
        others = {f"fraud.commands.{name}" for name in COMMANDS} - {f"fraud.commands.{path.stem}"}
        if path.stem != "main":
            assert not _imports(path) & others, f"{path.name} imports another command"
    for alias in SRC.glob("*.py"):
        if alias.name != "__init__.py":
            assert not any(name.startswith("src.") for name in _imports(alias)), alias.name


def test_no_code_imports_the_library_by_its_old_name() -> None:
    """`src.fraud` would load every module a second time beside `fraud` (two PipelineError
    classes: one would escape the other's `except`)."""
    for folder in ("src", "tests", "bench", "tools"):
        for path in (REPO / folder).rglob("*.py"):
            assert not any(name == "src.fraud" or name.startswith("src.fraud.")
                           for name in _imports(path)), path.relative_to(REPO)


def test_entry_points_use_their_checkout(tmp_path: Path) -> None:
    """DVC runs queued and --temp experiments in a copy of the repository: a stage there must
    import the copy's library (the code DVC hashed), not the installed one."""
    copy = tmp_path / "copy"
    shutil.copytree(SRC, copy / "src", ignore=shutil.ignore_patterns("__pycache__"))
    probe = "import src.stages, fraud, fraud.core.params; print(fraud.core.params.__file__)"
    done = run(sys.executable, "-c", probe, cwd=copy)
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()) == copy / "src" / "fraud" / "core" / "params.py"
