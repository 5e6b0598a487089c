"""What the results' header records about the machine and the checkout being measured."""

from __future__ import annotations

import os
import platform
import subprocess
from typing import Any

from bench.project import ROOT

# Import name: distribution name, where they differ.
VERSIONED = {"dvc": "dvc", "keras": "keras", "tensorflow": "tensorflow-cpu", "numpy": "numpy",
             "pandas": "pandas", "sklearn": "scikit-learn"}


def load_averages() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def versions() -> dict[str, str | None]:
    from importlib.metadata import version

    out: dict[str, str | None] = {}
    for module, distribution in VERSIONED.items():
        try:
            out[module] = version(distribution)
        except Exception:
            out[module] = None
    return out


# The yardstick the goals are stated against: these machines differ up to ~2× in speed and
# are shared, so the pipeline's times are compared with `import tensorflow` on the same
# machine in the same run (4.5 s where the 74 s repro of bench/RESULTS.md was measured).
YARDSTICK_RUNS = 3


def tf_import_seconds(runs: int = YARDSTICK_RUNS, warm_up: bool = True) -> dict[str, Any]:
    """Wall and CPU seconds of `python -c "import tensorflow"` in a fresh process (median of
    `runs`, after one untimed run that warms the file cache unless `warm_up` is False)."""
    import statistics
    import sys
    import time

    def once() -> tuple[float, float]:
        start = time.perf_counter()
        child = subprocess.Popen([sys.executable, "-c", "import tensorflow"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(child.pid, 0)
        if status != 0:
            raise RuntimeError("python -c 'import tensorflow' failed")
        return time.perf_counter() - start, usage.ru_utime + usage.ru_stime

    if warm_up:
        once()
    samples = [once() for _ in range(runs)]
    return {"wall_s": statistics.median(s[0] for s in samples),
            "cpu_s": statistics.median(s[1] for s in samples),
            "runs": runs, "load": load_averages()}


def machine() -> dict[str, Any]:
    import psutil

    found = versions()
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    return {"cpus": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "platform": platform.platform(), "python": platform.python_version(),
            "versions": found, "load_start": load_averages(), "uptime_start": uptime}


def project_info() -> dict[str, Any]:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""
    status = git("status", "--porcelain", "--", "src", "dvc.yaml", "params.yaml")
    return {"root": str(ROOT), "git_head": git("rev-parse", "--short", "HEAD"),
            "pipeline_files_modified": bool(status)}
