"""A `python` stand-in put first on PATH while DVC runs the pipeline: it runs the real
interpreter with the same arguments and appends one JSON line per command (argv, wall
seconds, peak RSS, CPU seconds, exit code) to $BENCH_STAGE_LOG.

`bench.project.install_shim` writes it as an executable named `python` (and `python3`) with
the real interpreter in its shebang, started with -S -E: only the standard library, so it
adds ~20 ms per stage. Peak RSS comes from wait4()'s rusage: the stage process's own
high-water mark, measured by the kernel, not sampled.
"""

import json
import os
import subprocess
import sys
import time


def wait_measured(child: subprocess.Popen, start: float) -> tuple[int, float, float, float]:
    """Waits for `child` (started at perf_counter `start`) with wait4: its exit code, wall
    seconds, peak RSS in MB (the kernel's high-water mark) and CPU seconds (user + system).
    Also used by bench/ab_stage.py."""
    try:
        _, status, usage = os.wait4(child.pid, 0)
    except KeyboardInterrupt:
        child.terminate()
        raise
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    child.returncode = code  # already reaped
    return code, wall, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def main() -> int:
    start = time.perf_counter()
    child = subprocess.Popen([os.environ["BENCH_REAL_PYTHON"], *sys.argv[1:]])
    code, wall, max_rss_mb, cpu_s = wait_measured(child, start)
    log = os.environ.get("BENCH_STAGE_LOG")
    if log:
        record = {"argv": sys.argv[1:], "wall_s": wall, "max_rss_mb": max_rss_mb,
                  "cpu_s": cpu_s, "returncode": code, "end": time.time()}
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
