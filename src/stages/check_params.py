"""Stage check_params: params.yaml is read and checked before any other stage runs.

Why a stage of its own: DVC deletes a stage's outputs before running it, and outputs kept in
git (metrics, plots; `cache: false`) cannot be restored by `dvc checkout`. Every stage
depends on this one's output, so a bad value (`dvc exp run -S train.strategy=bogus`) stops
the run here, before DVC has deleted anything. The output's content never changes, so a
passing check reruns nothing downstream; the stage itself takes a fraction of a second
(no numpy, pandas or TensorFlow).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fraud.core.cli import parser, run
from fraud.core.files import outputs
from fraud.core.params import load_params

PASSED = "params.yaml passed its checks\n"


def main(argv: Sequence[str]) -> None:
    cli = parser(__doc__)
    cli.add_argument("--out", required=True, type=Path,
                     help="written (always the same text) once params.yaml is valid")
    args = cli.parse_args(argv)
    load_params(args.params)
    with outputs() as out:
        out.path(args.out).write_text(PASSED, encoding="utf-8")


if __name__ == "__main__":
    run(main)
