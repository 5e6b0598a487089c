"""The features stage at the handbook's size and at 10x: time and peak memory.

    python -m bench.features                    # 1x and 10x, features.memory_mb 2048
    python -m bench.features --scales 1 --memory-mb 512

Simulates raw transactions (src/fraud/data/transactions.py: 5,000 customers x scale, 10,000
terminals, 183 days), writes them as the clean stage would (time in seconds, the log
amount), then runs the features stage's computation (src/fraud/data/history.py: per-card and
per-terminal windows of 1, 7 and 30 days, a 7-day delay, the time flags) in a fresh process,
and reports its wall and CPU seconds and its peak resident memory (the child's ru_maxrss
from os.wait4: DuckDB's buffers included). The aim (issue 30): 10x the rows in at most 12x
the time, peak memory under features.memory_mb. Both scales run in one invocation, so their
ratio holds when the machine's speed drifts."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import sys
from pathlib import Path
from fraud.data.history import add_history
from fraud.core.declaration import TRANSACTIONS, HistorySpec
spec = HistorySpec(windows=(1, 7, 30), delay=7, spending=("customer_id",),
                   risk=("terminal_id",), time_flags=True)
layout = TRANSACTIONS.with_history(spec).layout(())
print(add_history(Path(sys.argv[1]), Path(sys.argv[2]), spec, layout, int(sys.argv[3])))
"""


def write_cleaned(scale: int, folder: Path) -> tuple[Path, int]:
    """The simulated table at `scale` x the handbook's customers, as clean writes it."""
    import pandas as pd

    from fraud.core.declaration import TRANSACTIONS
    from fraud.core.params import TransactionsParams
    from fraud.data.prepare import clean, write_table
    from fraud.data.transactions import simulate

    rows = simulate(TransactionsParams(customers=5_000 * scale))
    seconds = (pd.to_datetime(rows["tx_datetime"], utc=True)
               - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    rows["tx_datetime"] = seconds.astype(np.float64)
    layout = TRANSACTIONS.layout(())
    path = folder / f"cleaned-{scale}x.parquet"
    write_table(path, clean(rows, 0.001, layout), layout)
    return path, len(rows)


def measure(source: Path, memory_mb: int) -> dict[str, float]:
    """One run of the features computation in a child process, its own rusage (os.wait4):
    the parent holds no table, so no pre-exec copy of it counts in the child's peak."""
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(source),
                              str(source.with_name(source.stem + "-features.parquet")),
                              str(memory_mb)], cwd=ROOT, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise SystemExit(f"the features computation failed (exit {child.returncode})")
    return {"wall_s": round(time.perf_counter() - started, 2),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def generate(scale: int, folder: Path) -> tuple[Path, int]:
    """`write_cleaned` in a child process: the parent stays small (see `measure`)."""
    done = subprocess.run([sys.executable, "-c", ("import sys; from pathlib import Path; "
                           "from bench.features import write_cleaned; "
                           "path, rows = write_cleaned(int(sys.argv[1]), Path(sys.argv[2])); "
                           "print(path); print(rows)"), str(scale), str(folder)],
                          cwd=ROOT, check=True, capture_output=True, text=True)
    path, rows = done.stdout.split()
    return Path(path), int(rows)


def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(prog="python -m bench.features", description=__doc__)
    cli.add_argument("--scales", default="1,10", help="multiples of the handbook's customers")
    cli.add_argument("--memory-mb", type=int, default=2048, help="features.memory_mb")
    args = cli.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-features-") as folder:
        for scale in (int(s) for s in args.scales.split(",")):
            source, rows = generate(scale, Path(folder))
            result = {"scale": scale, "rows": rows, "memory_mb": args.memory_mb,
                      **measure(source, args.memory_mb)}
            print(json.dumps(result), flush=True)
            results.append(result)
    if len(results) > 1:
        first, last = results[0], results[-1]
        print(f"rows x{last['rows'] / first['rows']:.2f}: wall x"
              f"{last['wall_s'] / first['wall_s']:.2f}, CPU x"
              f"{last['cpu_s'] / first['cpu_s']:.2f}; peak memory "
              f"{last['peak_rss_mb']:,.0f} MB (bound {args.memory_mb:,} MB)")
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "features-latest.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
