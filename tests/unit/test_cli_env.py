"""The numeric libraries' settings every entry point makes before numpy loads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fraud.core import cli

REPO = Path(__file__).resolve().parents[2]


def test_avx2_read_from_the_flags_line(tmp_path: Path) -> None:
    with_avx2 = tmp_path / "with"
    with_avx2.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n")
    assert cli._cpu_has_avx2(with_avx2)


def test_no_avx2_or_no_cpuinfo_keeps_openblas_choice(tmp_path: Path) -> None:
    older = tmp_path / "older"
    older.write_text("flags\t\t: fpu sse2 avx avx2_like\n")  # a longer name is not avx2
    assert not cli._cpu_has_avx2(older)
    assert not cli._cpu_has_avx2(tmp_path / "absent")


def test_a_stage_process_pins_the_kernels_unless_the_user_chose() -> None:
    probe = "import fraud.core.cli, os; print(os.environ.get('OPENBLAS_CORETYPE', ''))"
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    default = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=env,
                             capture_output=True, text=True, check=True).stdout.strip()
    assert default == (cli.BLAS_CORETYPE if cli._cpu_has_avx2() else "")
    chosen = subprocess.run([sys.executable, "-c", probe], cwd=REPO,
                            env={**env, "OPENBLAS_CORETYPE": "Zen"},
                            capture_output=True, text=True, check=True).stdout.strip()
    assert chosen == "Zen"
