"""Stage features: the history features params.yaml's `features:` section declares, added
to the cleaned table (per card and terminal windows, DuckDB, bounded memory). With none
declared (the Credit Card Fraud table) the output is a byte copy of the cleaned table."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fraud.core.cli import parser, run
from fraud.core.files import outputs, remove_outputs
from fraud.core.params import load_params
from fraud.data.columns import table_layout
from fraud.data.history import add_history


def main(argv: Sequence[str]) -> None:
    cli = parser(__doc__)
    cli.add_argument("--cleaned", required=True, type=Path)
    cli.add_argument("--out", required=True, type=Path, help="the table with its features")
    args = cli.parse_args(argv)
    remove_outputs(args.out)
    params = load_params(args.params)
    before = table_layout(args.cleaned, "clean", params.data.without_history())
    layout = params.data.layout(before.numeric)
    with outputs() as out:
        add_history(args.cleaned, out.path(args.out), params.data.history, layout,
                    params.features.memory_mb)


if __name__ == "__main__":
    run(main)
