"""deferred.py: a deferred module runs its code on first use, once, and not before."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fraud.training.deferred import defer_imports

PACKAGE = "deferred_probe_pkg"


@pytest.fixture
def probe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """A package and a submodule that record in `runs` each time their code executes."""
    package = tmp_path / PACKAGE
    package.mkdir()
    runs: list[str] = []
    (package / "__init__.py").write_text("import builtins\nbuiltins._probe_runs.append('pkg')\n")
    (package / "heavy.py").write_text(
        "import builtins\nbuiltins._probe_runs.append('heavy')\nVALUE = 42\n"
        "def twice(x):\n    return 2 * x\n")
    monkeypatch.setattr("builtins._probe_runs", runs, raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield runs
    for name in [m for m in sys.modules if m.split(".")[0] == PACKAGE]:
        del sys.modules[name]


def test_an_import_statement_does_not_run_it(probe: list[str]) -> None:
    assert defer_imports((f"{PACKAGE}.heavy",)) == [f"{PACKAGE}.heavy"]
    assert probe == ["pkg"]  # the parent package runs: finding the submodule needs it
    import deferred_probe_pkg.heavy as heavy  # what Keras does
    from deferred_probe_pkg import heavy as same

    assert heavy is same and probe == ["pkg"]
    # Metadata reads do not run it: autograph reads `__file__` of every loaded module,
    # isinstance falls back to `__class__`.
    assert heavy.__file__.endswith("heavy.py") and heavy.__name__ == f"{PACKAGE}.heavy"
    assert not isinstance(heavy, int) and probe == ["pkg"]
    assert heavy.VALUE == 42 and heavy.twice(3) == 6  # first use: the code runs, once
    assert probe == ["pkg", "heavy"]
    assert type(heavy) is type(sys) and sys.modules[f"{PACKAGE}.heavy"] is heavy


def test_a_module_already_imported_or_missing_is_left_alone(probe: list[str]) -> None:
    import deferred_probe_pkg.heavy

    assert defer_imports((f"{PACKAGE}.heavy", "no_such_module_here")) == []
    assert probe == ["pkg", "heavy"] and deferred_probe_pkg.heavy.VALUE == 42
    with pytest.raises(ImportError):
        import no_such_module_here  # noqa: F401
