"""Stage scale: standardise on train statistics alone, clip; write arrays for training."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from src.fraud.data import features_and_labels, fit_scaler, read_table, scale, scaler_to_json
from src.fraud.files import outputs, remove_outputs, write_json, write_npy
from src.fraud.params import load_params
from src.stages._cli import parser, run

SPLITS = ("train", "val", "test")


def main(argv: Sequence[str]) -> None:
    cli = parser(__doc__)
    for name in SPLITS:
        cli.add_argument(f"--{name}", required=True, type=Path, help=f"the {name} table")
        cli.add_argument(f"--{name}-features", required=True, type=Path)
        cli.add_argument(f"--{name}-labels", required=True, type=Path)
    cli.add_argument("--scaler", required=True, type=Path, help="scaler statistics (JSON)")
    args = vars(cli.parse_args(argv))
    params = load_params(args["params"])
    remove_outputs(args["scaler"], *(args[f"{n}_{k}"] for n in SPLITS
                                     for k in ("features", "labels")))
    tables = {name: features_and_labels(read_table(args[name], "split")) for name in SPLITS}
    scaler = fit_scaler(tables["train"][0])
    with outputs() as out:
        for name, (features, labels) in tables.items():
            write_npy(out.path(args[f"{name}_features"]),
                      scale(features, scaler, params.scale.clip))
            write_npy(out.path(args[f"{name}_labels"]), labels)
        write_json(out.path(args["scaler"]), scaler_to_json(scaler, params.scale.clip))


if __name__ == "__main__":
    run(main)
