"""The pipeline's speed benchmark, one command:

    python -m bench.run                 # real data if FRAUD_DATA_MIRROR points at it
    python -m bench.run --smoke         # tiny synthetic data, 2 epochs, ~1-2 minutes
    python -m bench.run --repeats 5 --skip-scale --skip-tutorial

Everything runs in throw-away copies of the project (own git repository, own DVC cache)
under a temporary folder; the workspace it is started from is never touched. Prints the
results as tables and writes them to bench/results/bench-<mode>-<time>.{json,md} plus
bench/results/latest.{json,md}. See bench/README.md for what each number means.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from bench import inprocess, report
from bench.project import ROOT
from bench.runner import SMOKE_EPOCHS, SMOKE_ROWS, Bench, log

RESULTS = ROOT / "bench" / "results"
SCALE_FACTOR = 10
# Flags whose default depends on --smoke: (with --smoke, without).
DEFAULTS = {"repeats": (1, 3), "epochs": (SMOKE_EPOCHS, 20),
            "bench_epochs": (SMOKE_EPOCHS, inprocess.EPOCHS),
            "tutorial_oversample_epochs": (1, inprocess.TUTORIAL_EPOCHS)}


def default_note(name: str) -> str:
    smoke, full = DEFAULTS[name]
    return f"default {full}, {smoke} with --smoke"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    cli = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    cli.add_argument("--smoke", action="store_true",
                     help=f"tiny synthetic data ({SMOKE_ROWS:,} rows), {SMOKE_EPOCHS} epochs: "
                          "checks that the benchmark works, measures nothing meaningful")
    cli.add_argument("--repeats", type=int, default=None,
                     help="runs of each measured command (medians are reported); "
                          + default_note("repeats"))
    cli.add_argument("--skip-scale", action="store_true",
                     help=f"skip the {SCALE_FACTOR}× data run")
    cli.add_argument("--skip-tutorial", action="store_true",
                     help="skip the tutorial's code path (slow: its oversampler)")
    cli.add_argument("--epochs", type=int, default=None,
                     help="epochs per strategy for the tutorial comparison and the scale runs "
                          "(early stopping off); " + default_note("epochs"))
    cli.add_argument("--bench-epochs", type=int, default=None,
                     help="epochs of the in-process s/epoch measurement; "
                          + default_note("bench_epochs"))
    cli.add_argument("--tutorial-oversample-epochs", type=int, default=None,
                     help="epochs of the tutorial's oversampler in the s/epoch measurement "
                          "(~16 s each on the real data); "
                          + default_note("tutorial_oversample_epochs"))
    cli.add_argument("--scale-factor", type=int, default=SCALE_FACTOR)
    cli.add_argument("--out-dir", type=Path, default=RESULTS)
    cli.add_argument("--keep", action="store_true", help="keep the temporary project copies")
    args = cli.parse_args(argv)
    for name, (smoke, full) in DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, smoke if args.smoke else full)
    if args.repeats < 1 or args.epochs < 1 or args.bench_epochs < 1:
        cli.error("--repeats, --epochs and --bench-epochs must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="fraud-bench-"))
    try:
        result = Bench(args, work).run()
    finally:
        if args.keep:
            log(f"project copies kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    paths = report.write_results(result, args.out_dir)
    print(report.markdown(result))
    log(f"wrote {paths['json']} and {paths['md']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
