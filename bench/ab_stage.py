"""A/B one pipeline stage between two versions of `src/`, interleaved, same inputs:

    python -m bench.ab_stage --a /tmp/before --b /tmp/after --project DIR --rounds 4 \\
        init_bias -- --train-features {project}/data/scaled/fit/train_features.npy ... \\
        --weights-out {out}/initial.weights.h5 ...

`--a` / `--b` are folders holding a `src/` each (e.g. `git worktree add /tmp/before HEAD`, or
a copy of src/ before a change); `--project` a finished project copy with data (`python -m
bench.run --keep` leaves them under /tmp/fraud-bench-*/). `{project}` and `{out}` in the stage
arguments are filled in; each run writes to its own `{out}`. The runs alternate A, B, B, A, …
so both see the same machine load. Prints median and minimum wall seconds, median CPU seconds
and peak RSS per variant, and whether the two variants' outputs are byte-identical (and each
variant's outputs the same on every round).

This is how every change in bench/NOTES.md was measured.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.shim import wait_measured


def run_once(root: Path, stage: str, args: list[str], params: Path) -> tuple[float, float, float]:
    """One run of the stage with `root`'s src/: wall seconds, CPU seconds, peak RSS MB."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(root)}
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", f"src.stages.{stage}", *args,
                             "--params", str(params)], cwd=root, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    code, wall, max_rss_mb, cpu_s = wait_measured(proc, start)
    stderr = proc.stderr.read() if proc.stderr else ""
    if code:
        raise SystemExit(f"{root}: stage {stage} failed:\n{stderr[-3000:]}")
    return wall, cpu_s, max_rss_mb


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()[:16]
            for p in sorted(folder.iterdir()) if p.is_file()}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    split = argv.index("--") if "--" in argv else len(argv)
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--a", required=True, type=Path, help="folder with the 'before' src/")
    cli.add_argument("--b", required=True, type=Path, help="folder with the 'after' src/")
    cli.add_argument("--project", required=True, type=Path, help="a project copy with data")
    cli.add_argument("--params", type=Path, help="params file (default: the project's)")
    cli.add_argument("--rounds", type=int, default=4)
    cli.add_argument("stage")
    opts = cli.parse_args(argv[:split])
    stage_args = argv[split + 1:]
    params = opts.params or opts.project / "params.yaml"
    results: dict[str, list[tuple[float, float, float]]] = {"A": [], "B": []}
    digests: dict[str, dict[str, str] | None] = {"A": None, "B": None}
    work = Path(tempfile.mkdtemp(prefix="ab-stage-"))
    try:
        for round_ in range(opts.rounds):
            order = [("A", opts.a), ("B", opts.b)]
            for label, root in order if round_ % 2 == 0 else order[::-1]:
                out = work / f"{label}{round_}"
                out.mkdir()
                args = [a.replace("{project}", str(opts.project.resolve()))
                        .replace("{out}", str(out)) for a in stage_args]
                results[label].append(run_once(root, opts.stage, args, params.resolve()))
                found = digest(out)
                if digests[label] is None:
                    digests[label] = found
                elif digests[label] != found:
                    print(f"{label}: outputs differ between rounds (non-deterministic)")
            print(f"round {round_ + 1}: " + "  ".join(
                f"{k} {v[-1][0]:.2f} s" for k, v in results.items()) +
                f"  (load {os.getloadavg()[0]:.2f})", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for label in ("A", "B"):
        rows = results[label]
        print(f"{label}: wall median {statistics.median(r[0] for r in rows):.2f} s "
              f"(min {min(r[0] for r in rows):.2f}), CPU median "
              f"{statistics.median(r[1] for r in rows):.2f} s, peak RSS "
              f"{max(r[2] for r in rows):.0f} MB")
    print(f"outputs byte-identical between A and B: {digests['A'] == digests['B']}")


if __name__ == "__main__":
    main()
