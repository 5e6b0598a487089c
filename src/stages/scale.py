"""Stage scale: standardise on train statistics alone, clip; write arrays for training."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fraud.core.cli import parser, run
from fraud.core.files import outputs, remove_outputs, write_json, write_npy
from fraud.core.params import load_params
from fraud.data.prepare import (
    features_and_labels,
    fit_scaler,
    layout_of,
    learn_categories,
    read_table,
    scaled_features,
    scaler_to_json,
)
from fraud.evaluation.figures import feature_distribution_png

SPLITS = ("train", "val", "test")


def main(argv: Sequence[str]) -> None:
    cli = parser(__doc__)
    for name in SPLITS:
        cli.add_argument(f"--{name}", required=True, type=Path, help=f"the {name} table")
        cli.add_argument(f"--{name}-features", required=True, type=Path)
        cli.add_argument(f"--{name}-labels", required=True, type=Path)
    cli.add_argument("--scaler", required=True, type=Path, help="scaler statistics (JSON)")
    cli.add_argument("--distribution-png", required=True, type=Path,
                     help="the two most separating features of frauds and legitimate rows "
                          "(training split)")
    args = vars(cli.parse_args(argv))
    remove_outputs(args["scaler"], args["distribution_png"], *(args[f"{n}_{k}"] for n in SPLITS
                                     for k in ("features", "labels")))
    params = load_params(args["params"])
    read = {name: read_table(args[name], "split", params.data) for name in SPLITS}
    layout = layout_of(read["train"], params.data)
    tables = {name: features_and_labels(table, layout) for name, table in read.items()}
    scaler = fit_scaler(tables["train"][0])
    categories = learn_categories(read["train"], layout, params.data.max_levels,
                                  f"{args['train']}")
    scaled = {name: scaled_features(read[name], scaler, params.scale.clip, layout, categories)
              for name in SPLITS}
    with outputs() as out:
        for name, (_, labels) in tables.items():
            write_npy(out.path(args[f"{name}_features"]), scaled[name])
            write_npy(out.path(args[f"{name}_labels"]), labels)
        write_json(out.path(args["scaler"]),
                   scaler_to_json(scaler, params.scale.clip, layout, categories))
        # The numeric features only: a one-hot column separates nothing a density shows.
        feature_distribution_png(out.path(args["distribution_png"]),
                                 scaled["train"][:, :len(layout.features)],
                                 tables["train"][1], layout.features)


if __name__ == "__main__":
    run(main)
