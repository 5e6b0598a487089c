"""`fraud experiments`: one row per experiment, within 100 columns.

    fraud experiments            # HEAD's experiments, and the workspace
    fraud experiments -A         # the experiments of every commit

Each row: the experiment's name, the model it shipped (metrics/evaluate.json) with its test
PR-AUC and 95 % interval, recall, precision and cost; under it, `changed:` the params that
differ from its baseline commit (names and values). The workspace row says what the workspace
changed from HEAD (an applied experiment, an edit): `dvc exp run -S` leaves its params there.
Queued, running and failed experiments are listed with their state. It reads
`dvc exp show --json` (run from the project's root).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence

from fraud.core.cli import OneLineParser, run
from fraud.errors import PipelineError, printable
from fraud.experiments.listing import format_rows, rows_from_show


def build_parser() -> OneLineParser:
    cli = OneLineParser(prog="fraud experiments", description=__doc__.splitlines()[0])
    cli.add_argument("-A", "--all-commits", action="store_true",
                     help="the experiments of every commit, not only HEAD's")
    return cli


def exp_show(all_commits: bool) -> object:
    """`dvc exp show --json`, parsed; its error as one line."""
    command = [sys.executable, "-m", "dvc", "exp", "show", "--json"]
    done = subprocess.run(command + (["--all-commits"] if all_commits else []),
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        reason = next((line for line in done.stderr.splitlines() if line.strip()), "no output")
        raise PipelineError(f"dvc exp show failed: {printable(reason.strip(), 200)[1:-1]}; "
                            "run this from the project's root (a DVC repository)")
    try:
        return json.loads(done.stdout)
    except ValueError:
        raise PipelineError("dvc exp show --json printed no JSON; is this DVC 3?") from None


def main(argv: Sequence[str]) -> None:
    args = build_parser().parse_args(argv)
    print(format_rows(rows_from_show(exp_show(args.all_commits))), end="")


def command(argv: Sequence[str] | None = None) -> None:
    """`fraud experiments`: one line and exit 1 for an expected failure."""
    run(main, argv)


if __name__ == "__main__":
    command()
