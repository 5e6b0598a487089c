"""Stage split: train / val / test tables (`split.method`: stratified, random or by time;
duplicates grouped), and the data summary with each split's rows and frauds."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from fraud.core.cli import parser, run
from fraud.core.files import outputs, remove_outputs, write_json
from fraud.core.params import load_params
from fraud.data.prepare import layout_of, read_table, split, summarise, write_table

log = logging.getLogger("split")
# A time split drops later copies of duplicates; beyond this share of the rows, the
# duplicates are more likely a table of too few inputs than copies of transactions.
DROPPED_WARNING = 0.05


def main(argv: Sequence[str]) -> None:
    cli = parser(__doc__)
    cli.add_argument("--table", required=True, type=Path,
                     help="the cleaned table with its history features (stage features)")
    cli.add_argument("--train", required=True, type=Path)
    cli.add_argument("--val", required=True, type=Path)
    cli.add_argument("--test", required=True, type=Path)
    cli.add_argument("--summary", required=True, type=Path, help="data metrics (JSON)")
    args = cli.parse_args(argv)
    remove_outputs(args.train, args.val, args.test, args.summary)
    params = load_params(args.params)
    cleaned = read_table(args.table, "features", params.data)
    layout = layout_of(cleaned, params.data)
    parts = split(cleaned, params.split, params.seed, layout, params.data.history.delay)
    dropped = parts.summary["duplicates_dropped"]
    if dropped > DROPPED_WARNING * len(cleaned):
        log.warning("%d of %d rows dropped as later copies of duplicates (rows identical in "
                    "every feature and entity); if they are distinct transactions, declare "
                    "what tells them apart (data.entities) or set split.group_duplicates: "
                    "false", dropped, len(cleaned))
    with outputs() as out:
        for path, table in ((args.train, parts.train), (args.val, parts.val),
                            (args.test, parts.test)):
            write_table(out.path(path), table, layout)
        write_json(out.path(args.summary), {**summarise(cleaned, layout), **parts.summary})


if __name__ == "__main__":
    run(main)
