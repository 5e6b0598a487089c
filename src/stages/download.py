"""Stage download: writes the raw CSV (from FRAUD_DATA_MIRROR, download.url, or synthetic)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from fraud.core.cli import parser, run
from fraud.core.files import outputs, remove_outputs
from fraud.core.params import load_params
from fraud.data.download import download, mirror_from_env

log = logging.getLogger("download")


def main(argv: Sequence[str]) -> None:
    cli = parser(__doc__)
    cli.add_argument("--out", required=True, type=Path, help="the raw CSV to write")
    args = cli.parse_args(argv)
    remove_outputs(args.out)
    params = load_params(args.params)
    with outputs() as out:
        result = download(params.download, out.path(args.out), params.download.synthetic_seed,
                          mirror_from_env(), scratch=out.scratch(args.out),
                          expected=params.data, simulation=params.transactions)
    log.info("wrote %s from %s (sha256 %s%s)", args.out, result.source, result.sha256,
             ", verified" if result.checked else "")


if __name__ == "__main__":
    run(main)
