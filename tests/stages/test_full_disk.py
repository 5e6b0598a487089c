"""A disk that refuses a write is one line, not a traceback, and leaves no output behind.

The stages run as subprocesses under a file-size limit (RLIMIT_FSIZE, with SIGXFSZ ignored):
every write past FILE_LIMIT bytes fails with EFBIG, as a full disk fails with ENOSPC, in the
same places (numpy, pyarrow, pandas, plain writes), without needing a small filesystem.
"""

from __future__ import annotations

import resource
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fraud.core.cli import DISK_FULL, os_error_line
from fraud.core.files import TEMP_PREFIX
from fraud.core.params import SplitParams
from fraud.data.prepare import clean, split, write_table
from fraud.data.synthetic import generate_creditcard, write_creditcard_csv
from tests.conftest import REPO, stage_env

FILE_LIMIT = 10_000  # bytes: every stage's output is larger


def _limited() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_LIMIT, FILE_LIMIT))


def run_limited(stage: str, *args: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", f"src.stages.{stage}", *map(str, args)],
                          cwd=REPO, env=stage_env(), capture_output=True, text=True,
                          timeout=120, check=False, preexec_fn=_limited)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("inputs")
    frame = generate_creditcard(3_000, 0.02, 5)
    write_creditcard_csv(frame, folder / "raw.csv")
    table = clean(frame, 0.001)
    write_table(folder / "cleaned.parquet", table)
    splits = split(table, SplitParams("stratified", True, 0.2, 0.2), 42)
    for name in ("train", "val", "test"):
        write_table(folder / f"{name}.parquet", getattr(splits, name))
    return {"folder": folder, **{p.stem: p for p in folder.iterdir()}}


def _stage_args(stage: str, inputs: dict[str, Path], out: Path, params: Path) -> list[Any]:
    splits = [arg for name in ("train", "val", "test")
              for arg in (f"--{name}", inputs[name])]
    return {
        "download": ["--out", out / "raw.csv"],
        "clean": ["--raw", inputs["raw"], "--out", out / "cleaned.parquet"],
        "split": ["--table", inputs["cleaned"], *[arg for name in ("train", "val", "test")
                                                    for arg in (f"--{name}",
                                                                out / f"{name}.parquet")],
                  "--summary", out / "data.json"],
        "scale": [*splits, *[arg for name in ("train", "val", "test") for kind in
                             ("features", "labels")
                             for arg in (f"--{name}-{kind}", out / f"{name}_{kind}.npy")],
                  "--scaler", out / "scaler.json", "--distribution-png", out / "dist.png"],
    }[stage] + ["--params", params]


@pytest.mark.parametrize("stage", ["download", "clean", "split", "scale"])
def test_a_full_disk_is_one_line_and_leaves_nothing(stage: str, inputs: dict[str, Path],
                                                     tmp_path: Path, write_params: Any,
                                                     stage_error: Any) -> None:
    params = write_params({"download.url": "synthetic", "download.synthetic_rows": 20_000})
    out = tmp_path / "out"
    out.mkdir()
    proc = run_limited(stage, *_stage_args(stage, inputs, out, params))
    stage_error(proc, "error: ", "writing failed", "run again",
                only_line=stage != "download")  # download logs what it generates first
    assert [p.name for p in out.iterdir()] == []


def test_the_stages_args_are_right(inputs: dict[str, Path], tmp_path: Path,
                                   write_params: Any) -> None:
    """Without the limit the same command lines succeed (so the test above tests the disk)."""
    params = write_params({"download.url": "synthetic", "download.synthetic_rows": 20_000})
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.run([sys.executable, "-m", "src.stages.scale",
                           *map(str, _stage_args("scale", inputs, out, params))],
                          cwd=REPO, env=stage_env(), capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert not any(p.name.startswith(TEMP_PREFIX) for p in out.iterdir())


@pytest.mark.parametrize("code", sorted(DISK_FULL))
def test_os_error_line_says_what_to_do(code: int) -> None:
    line = os_error_line(OSError(code, "No room", "data/x.parquet"))
    assert line.startswith("writing failed (data/x.parquet): No room; ")
    assert DISK_FULL[code] in line and "run again" in line


def test_stdout_on_a_full_device_is_one_line(tmp_path: Path) -> None:
    """`… > /dev/full`: the flush at exit failed with a second traceback-like message."""
    script = ("from fraud.core.cli import run\n"
              "run(lambda argv: print('x' * 100_000))\n")
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=stage_env(),
                              stdout=full, stderr=subprocess.PIPE, text=True, timeout=60,
                              check=False)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: writing failed"), proc.stderr


def test_numpys_short_write_is_a_full_disk() -> None:
    """numpy says "55651 requested and 2468 written", with no errno."""
    line = os_error_line(OSError("55651 requested and 2468 written"))
    assert line.startswith("writing failed: ") and "the disk is full" in line
    assert os_error_line(OSError("something else")) == "something else"
