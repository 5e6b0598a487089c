"""`fraud`: the user-facing commands in one place, each with its own --help.

    fraud predict models/fraud_detector.onnx transactions.csv -o scores.csv
    fraud monitor models/fraud_detector.onnx day.csv
    fraud summary
    fraud sweep --seeds 5 --jobs 2
    fraud experiments

A subcommand's module is imported only when it runs: `fraud --help` and `fraud summary`
start in a fraction of a second, and only `predict` with a .keras model loads TensorFlow.
`python -m src.<command>` is the same command (an alias kept for scripts and notes).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

# name -> the line `fraud --help` shows; each is fraud.commands.<name>.command(argv)
COMMANDS = {
    "predict": "score a CSV of transactions with the exported model (and its card)",
    "monitor": "drift and label-free estimates for a batch, against the training data",
    "summary": "the models of the last run side by side: validation and test figures",
    "sweep": "the models over several seeds (and grids of params) on DVC's queue",
    "experiments": "one row per experiment: what it changed, the model it shipped, its figures",
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {line}" for name, line in COMMANDS.items()]
    return ("usage: fraud <command> [options]   (fraud <command> --help for its options)\n\n"
            "commands:\n" + "\n".join(lines) + "\n")


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage(), end="")
        sys.exit(0 if args else 2)
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        from fraud.core.cli import escape_controls  # here: `fraud --help` imports nothing more

        shown = escape_controls(name[:80])
        print(f"error: fraud: unknown command {shown!r}; one of {', '.join(COMMANDS)} "
              "(fraud --help)", file=sys.stderr)
        sys.exit(2)
    module = importlib.import_module(f"fraud.commands.{name}")
    sys.argv[0] = f"fraud {name}"
    module.command(rest)


if __name__ == "__main__":
    main()
