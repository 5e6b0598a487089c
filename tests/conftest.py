"""Shared fixtures: the repo's params as a dict, params files in tmp_path, stage subprocesses,
the end-to-end tests' built project; the e2e marker by folder and the order test files are
handed to xdist workers."""

from __future__ import annotations

import copy
import http.server
import os
import socketserver
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent

# The suite is CPU-bound on 2 cores: BLAS and OpenMP pools of one thread in every test process
# and subprocess (stages, DVC's queue workers). Idle pool threads spin, and under this load
# that cost ~13 % of a synthetic `dvc repro`'s CPU. Set before numpy is imported.
for _pool in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_pool, "1")

# Tests are grouped by what they run: unit/ (the library, in-process), stages/ (one stage as a
# subprocess), e2e/ (real dvc commands in a temporary repository; marker `e2e`, so that
# `pytest -m "not e2e"` is the fast loop). The slow folders go first, so that the two xdist
# workers share them and the many quick files fill the gaps; `--no-loadscope-reorder` in
# pytest.ini keeps this order. Within e2e/, the two longest files lead.
FOLDERS_SLOW_FIRST = ("e2e", "stages", "unit")
LONGEST_E2E_FILES = ("test_sweep_e2e.py", "test_bench.py")


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> tuple[int, int]:
        folder, name = item.path.parent.name, item.path.name
        return (FOLDERS_SLOW_FIRST.index(folder) if folder in FOLDERS_SLOW_FIRST
                else len(FOLDERS_SLOW_FIRST),
                LONGEST_E2E_FILES.index(name) if name in LONGEST_E2E_FILES
                else len(LONGEST_E2E_FILES))

    for item in items:
        if item.path.parent.name == "e2e":
            item.add_marker(pytest.mark.e2e)
    items.sort(key=rank)  # stable: within a file, and among the rest, collection order


@pytest.fixture(scope="session")
def built_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic project after one `dvc repro`, built once per session (shared by the
    xdist workers: their temporary folders have one parent). Read-only: copy it."""
    from tests.synthetic_project import built_project as build_once

    base = tmp_path_factory.getbasetemp()
    return build_once(base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base)


# `python -c HEAVY_IMPORTS_PROBE MODULE ARGS...` runs `python -m MODULE ARGS...` and, at exit,
# prints which of TensorFlow, Keras and scikit-learn it imported as its last stderr line: for
# what must work, or fail, without TensorFlow's ~5 s import (or scikit-learn's ~1 s).
HEAVY_IMPORTS_PROBE = """
import atexit, runpy, sys
atexit.register(lambda: print("heavy modules:", sorted(m for m in ("tensorflow", "keras", "sklearn")
                                                       if m in sys.modules), file=sys.stderr))
module = sys.argv[1]
sys.argv = [module, *sys.argv[2:]]
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""
NO_HEAVY_IMPORTS = "heavy modules: []"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def repo_params_raw() -> dict[str, Any]:
    """params.yaml as YAML reads it (treat as read-only; use `raw_params` to modify)."""
    return yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))


@pytest.fixture
def raw_params(repo_params_raw: dict[str, Any]) -> dict[str, Any]:
    """A private deep copy of params.yaml's content, to modify freely."""
    return copy.deepcopy(repo_params_raw)


def with_value(raw: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """Sets `section.key` (or a top-level key) in the params dict; returns the dict."""
    from tests.project_files import set_dotted

    set_dotted(raw, dotted, value)
    return raw


def parse_error(raw: dict[str, Any]) -> str:
    """parse_params' error for `raw`: one line, naming params.yaml."""
    from fraud.core.params import parse_params
    from fraud.errors import PipelineError

    with pytest.raises(PipelineError) as info:
        parse_params(raw)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("params.yaml: ")
    return message


@pytest.fixture
def write_params(tmp_path: Path, repo_params_raw: dict[str, Any]
                 ) -> Callable[..., Path]:
    """write_params({"clean.eps": "1e-08"}) -> a params file in tmp_path, repo's values
    otherwise."""

    from tests.project_files import set_dotted

    def write(overrides: dict[str, Any] | None = None, name: str = "params.yaml") -> Path:
        raw = copy.deepcopy(repo_params_raw)
        for dotted, value in (overrides or {}).items():
            set_dotted(raw, dotted, value)
        path = tmp_path / name
        path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
        return path

    return write


def stage_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a stage subprocess: no mirror unless asked, no proxy for localhost."""
    env = {k: v for k, v in os.environ.items() if k != "FRAUD_DATA_MIRROR"}
    env.update(DVC_NO_ANALYTICS="1", PYTHONDONTWRITEBYTECODE="1",
               NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    env.update(extra or {})
    return env


@pytest.fixture
def run_stage() -> Callable[..., subprocess.CompletedProcess[str]]:
    """run_stage("clean", "--raw", path, ..., env={...}): `python -m src.stages.<name>` in the
    repo."""

    def run(name: str, *args: Any, env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", f"src.stages.{name}", *map(str, args)],
                              cwd=REPO, env=stage_env(env), capture_output=True, text=True,
                              timeout=timeout, check=False)

    return run


def check_stage_error(proc: subprocess.CompletedProcess[str], *fragments: str,
                      only_line: bool = True) -> str:
    """Exit 1, one `error: ...` line (the last one; the only one if `only_line`), no traceback.

    Returns the error line; asserts every fragment occurs in it.
    """
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines, "nothing on stderr"
    if only_line:
        assert len(lines) == 1, proc.stderr
    error_lines = [line for line in lines if line.startswith("error:")]
    assert error_lines == [lines[-1]], proc.stderr
    for fragment in fragments:
        assert fragment in lines[-1], (fragment, lines[-1])
    return lines[-1]


@pytest.fixture
def stage_error() -> Callable[..., str]:
    """stage_error(proc, "fragment", ...): see check_stage_error."""
    return check_stage_error


# Runs a command, then prints its exit status, peak RSS (KiB) and seconds. A child's ru_maxrss
# starts from its parent's at fork, so the command must be forked by this small process, not
# by pytest (~300 MB); os.wait4 gives the rusage of that one child.
_MEASURE = """
import os, subprocess, sys, time
start = time.perf_counter()
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(child.pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss, time.perf_counter() - start)
"""


@pytest.fixture
def run_measured() -> Callable[..., tuple[int, str, float, float]]:
    """run_measured([cmd, ...]) in the repo -> (exit status, stderr, seconds, peak RSS in MB)."""

    def run(args: list[Any], timeout: float = 300) -> tuple[int, str, float, float]:
        env = stage_env({"TF_CPP_MIN_LOG_LEVEL": "2"})
        done = subprocess.run([sys.executable, "-c", _MEASURE, *map(str, args)], cwd=REPO,
                              env=env, capture_output=True, text=True, timeout=timeout,
                              check=False)
        assert done.returncode == 0, done.stderr
        code, rss_kib, seconds = done.stdout.split()
        return int(code), done.stderr, float(seconds), int(rss_kib) / 1024

    return run


class PredictRun(NamedTuple):
    code: int
    stdout: str
    stderr: str

    @property
    def error_line(self) -> str:
        """The one stderr line of a failed run."""
        return self.error_line_with(status=1)

    @property
    def usage_error_line(self) -> str:
        """The one stderr line of a command line argparse refused (exit status 2)."""
        return self.error_line_with(status=2)

    def error_line_with(self, status: int) -> str:
        lines = self.stderr.strip().splitlines()
        assert self.code == status, (self.code, self.stderr)
        assert len(lines) == 1 and lines[0].startswith("error: "), self.stderr
        return lines[0]


def run_predict(args: Sequence[Any], capsys: pytest.CaptureFixture[str]) -> PredictRun:
    """`python -m src.predict ARGS`, in-process: exit code, stdout, stderr."""
    from fraud.commands.predict import run

    capsys.readouterr()
    try:
        run([str(a) for a in args])
        code = 0
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    return PredictRun(code, captured.out, captured.err)


# --- CSV lines as bytes, for the malformed-input tests (test_data, test_malformed_inputs) ---

def join(lines: Sequence[str], end: str = "\n") -> bytes:
    return (end.join(lines) + end).encode()


def set_cell(line_no: int, column: str, value: str) -> Callable[[list[str]], bytes]:
    """`value` in `column` of file line `line_no` (1-based, the header is line 1)."""
    from tests.credit_card import RAW_COLUMNS

    def make(lines: list[str]) -> bytes:
        lines = list(lines)
        cells = lines[line_no - 1].split(",")
        cells[RAW_COLUMNS.index(column)] = value
        lines[line_no - 1] = ",".join(cells)
        return join(lines)

    return make


def save_scaled_splits(folder: Path, make_split: Callable[[int, int], tuple[Any, Any]],
                       sizes: dict[str, tuple[int, int]]) -> dict[str, Path]:
    """`{name}_features.npy` / `{name}_labels.npy` as `scale` writes them, for each
    `name: (rows, seed)`, drawn by `make_split(rows, seed)`; returns the paths by key."""
    import numpy as np

    paths = {}
    for name, (rows, seed) in sizes.items():
        for kind, array in zip(("features", "labels"), make_split(rows, seed), strict=True):
            paths[f"{name}_{kind}"] = folder / f"{name}_{kind}.npy"
            np.save(paths[f"{name}_{kind}"], array)
    return paths


def write_scaler(path: Path, clip: float) -> Path:
    """The scale stage's statistics: the detectors' preprocessing (identity here)."""
    import json

    from tests.credit_card import FEATURES, N_FEATURES, SCALER_SPEC

    path.write_text(json.dumps({**SCALER_SPEC, "features": FEATURES, "mean": [0.0] * N_FEATURES,
                                "scale": [1.0] * N_FEATURES, "clip": clip}))
    return path


# --- local servers for the download tests (never the network) ------------------------------

# A client that hangs up mid-request (a download the test makes stop: too big, too slow, not a
# CSV) is what these tests provoke, not a server failure.
CLIENT_GONE = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)


class QuietHTTPServer(http.server.ThreadingHTTPServer):
    """ThreadingHTTPServer without the "Exception occurred during processing of request"
    traceback for a client that hung up; any other exception in a handler is still printed."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], CLIENT_GONE):
            return
        super().handle_error(request, client_address)


def serve_on_loopback(server: socketserver.BaseServer) -> Iterator[str]:
    """Serves `server` (bound to 127.0.0.1) in a thread; yields its base URL, then stops it."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy and no data mirror: a download test reaches its own 127.0.0.1 server alone."""
    from fraud.data.download import MIRROR_ENV

    monkeypatch.delenv(MIRROR_ENV, raising=False)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                 "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
