"""Compare the models over several seeds: src/sweep.py under its older name.

    python -m src.compare_seeds --seeds 5                 # seeds 42..46 (params.yaml's seed on)
    python -m src.compare_seeds --seed-list 1,2,3 --set train.epochs=20 --jobs 2

Kept for the commands in notes and scripts: the same options as `fraud sweep`, with
the report in reports/seeds/seeds.md and .json and experiments named seeds-<commit>-s<seed>-...
Experiments are kept (a rerun reuses them); `dvc exp remove` drops them.
"""

from __future__ import annotations

from collections.abc import Sequence

from fraud.commands.sweep import main as sweep_main
from fraud.commands.sweep import parser
from fraud.core.cli import run


def main(argv: Sequence[str]) -> None:
    cli = parser(__doc__, out_dir="reports/seeds", stem="seeds", prefix="seeds")
    sweep_main(argv, cli)


if __name__ == "__main__":
    run(main)
