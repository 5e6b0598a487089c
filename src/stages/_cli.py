"""What every stage script shares: argument parsing conventions and error handling."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from src.fraud.errors import PipelineError


def parser(description: str) -> argparse.ArgumentParser:
    result = argparse.ArgumentParser(description=description)
    result.add_argument("--params", default="params.yaml", help="the params file")
    return result


def strategy_pattern(value: str) -> str:
    """An argparse type: a path with `{strategy}` in it, one file per strategy."""
    if "{strategy}" not in value:
        raise argparse.ArgumentTypeError(f"{value!r} must contain {{strategy}}")
    return value


def model_pattern(value: str) -> str:
    """An argparse type: a path with `{model}` in it, one file per model."""
    if "{model}" not in value:
        raise argparse.ArgumentTypeError(f"{value!r} must contain {{model}}")
    return value


class _ShortNames(logging.Formatter):
    """`train: baseline epoch 1: …`, not `src.fraud.train: …`: the module name is enough."""

    def format(self, record: logging.LogRecord) -> str:
        record.short_name = record.name.rsplit(".", 1)[-1]
        return super().format(record)


def run(main: Callable[[Sequence[str]], None], argv: Sequence[str] | None = None) -> None:
    """Runs a stage: an expected failure prints one line and exits 1, with no traceback."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_ShortNames("%(short_name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    try:
        main(sys.argv[1:] if argv is None else argv)
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
