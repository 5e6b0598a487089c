"""Stage clean: validates the raw CSV against params.yaml's data: section and adds the
amount's log feature, `log(amount + eps)` (the tutorial's "Log Amount").

The raw file is checked against download.sha256 (unless the data is generated): DVC trusts a
file whose size and mtime did not change, so an edit in place would otherwise go unnoticed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fraud.core.cli import parser, run
from fraud.core.files import outputs, remove_outputs
from fraud.core.params import load_params
from fraud.data.prepare import clean, layout_of, read_raw_csv, write_table


def main(argv: Sequence[str]) -> None:
    cli = parser(__doc__)
    cli.add_argument("--raw", required=True, type=Path)
    cli.add_argument("--out", required=True, type=Path, help="the cleaned table (Parquet)")
    args = cli.parse_args(argv)
    remove_outputs(args.out)
    params = load_params(args.params)
    declaration = params.data.without_history()  # the features stage adds the history
    raw = read_raw_csv(args.raw, params.download.raw_sha256, declaration)
    layout = layout_of(raw, declaration, derived=False)
    with outputs() as out:
        write_table(out.path(args.out), clean(raw, params.clean.eps, layout), layout)


if __name__ == "__main__":
    run(main)
