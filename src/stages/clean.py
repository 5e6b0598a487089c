"""Stage clean: validates the raw CSV and adds `Log Amount = log(Amount + eps)`.

The raw file is checked against download.sha256 (unless the data is generated): DVC trusts a
file whose size and mtime did not change, so an edit in place would otherwise go unnoticed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fraud.cli import parser, run
from fraud.data.prepare import clean, read_raw_csv, write_table
from fraud.files import outputs, remove_outputs
from fraud.params import load_params


def main(argv: Sequence[str]) -> None:
    cli = parser(__doc__)
    cli.add_argument("--raw", required=True, type=Path)
    cli.add_argument("--out", required=True, type=Path, help="the cleaned table (Parquet)")
    args = cli.parse_args(argv)
    remove_outputs(args.out)
    params = load_params(args.params)
    raw = read_raw_csv(args.raw, sha256=params.download.raw_sha256)
    with outputs() as out:
        write_table(out.path(args.out), clean(raw, params.clean.eps))


if __name__ == "__main__":
    run(main)
