"""Stage split: seeded (stratified) train / val / test tables."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from src.fraud.data import read_table, split, write_table
from src.fraud.files import outputs, remove_outputs
from src.fraud.params import load_params
from src.stages._cli import parser, run


def main(argv: Sequence[str]) -> None:
    cli = parser(__doc__)
    cli.add_argument("--cleaned", required=True, type=Path)
    cli.add_argument("--train", required=True, type=Path)
    cli.add_argument("--val", required=True, type=Path)
    cli.add_argument("--test", required=True, type=Path)
    args = cli.parse_args(argv)
    remove_outputs(args.train, args.val, args.test)
    params = load_params(args.params)
    cleaned = read_table(args.cleaned, "clean")
    parts = split(cleaned, params.split.test_size, params.split.val_size, params.split.stratify,
                  params.seed)
    with outputs() as out:
        for path, table in ((args.train, parts.train), (args.val, parts.val),
                            (args.test, parts.test)):
            write_table(out.path(path), table)


if __name__ == "__main__":
    run(main)
